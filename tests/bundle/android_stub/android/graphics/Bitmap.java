// A stub of the Android API the generated Kotlin uses, so kotlinc can check it without an Android SDK.
package android.graphics;

public class Bitmap {
    public static Bitmap createScaledBitmap(Bitmap src, int dstWidth, int dstHeight, boolean filter) {
        return src;
    }

    public int getWidth() { return 0; }

    public int getHeight() { return 0; }

    public void getPixels(int[] pixels, int offset, int stride, int x, int y, int width, int height) {}
}
