"""Models as TensorFlow sees them: loading and saving Keras models (`keras_io`), the TFLite converter
(`convert`) and formicary's built-in small architectures (`zoo`). Everything here may import TensorFlow."""
