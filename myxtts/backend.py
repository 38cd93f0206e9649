"""The one place TensorFlow is imported from, so its start-up noise is handled once.

TensorFlow prints CUDA and oneDNN notices from C++ before its log level applies; when the user asked
for quiet (TF_CPP_MIN_LOG_LEVEL >= 2, the default here), stderr is hidden for the import alone.
Import errors still surface as exceptions.
"""
import os


def _import_quietly():
    if int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0) < 2:
        import tensorflow
        return tensorflow
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow


tf = _import_quietly()
