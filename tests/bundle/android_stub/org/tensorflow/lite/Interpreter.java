// A stub of LiteRT's Java Interpreter API (org.tensorflow.lite), signatures as in the LiteRT AAR.
package org.tensorflow.lite;

import java.nio.ByteBuffer;
import java.util.Map;

public class Interpreter implements AutoCloseable {
    public static class Options {
        public Options setNumThreads(int numThreads) { return this; }
    }

    public Interpreter(ByteBuffer model, Options options) {}

    public int getInputIndex(String opName) { return 0; }

    public int getOutputIndex(String opName) { return 0; }

    public int getInputTensorCount() { return 1; }

    public int getOutputTensorCount() { return 1; }

    public void run(Object input, Object output) {}

    public void runForMultipleInputsOutputs(Object[] inputs, Map<Integer, Object> outputs) {}

    public void resetVariableTensors() {}

    @Override
    public void close() {}
}
