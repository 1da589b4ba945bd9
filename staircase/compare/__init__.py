"""Compression methods compared on the device: channel pruning (the designer's students),
unstructured weight pruning and post-training quantisation, each point measured for
accuracy, latency beside the unmodified network, size on disk and peak memory."""
