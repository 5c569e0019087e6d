// A stub of the LiteRT Support Library's FileUtil, signatures as in the AAR.
package org.tensorflow.lite.support.common;

import android.content.Context;
import java.nio.MappedByteBuffer;
import java.util.List;

public class FileUtil {
    public static MappedByteBuffer loadMappedFile(Context context, String filePath) { return null; }

    public static List<String> loadLabels(Context context, String filePath) { return null; }
}
