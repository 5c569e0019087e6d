// A stub of the Android API the generated Kotlin uses, so kotlinc can check it without an Android SDK.
package android.content;

public class Context {}
