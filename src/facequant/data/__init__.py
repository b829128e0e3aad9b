"""Faces in: LFW and folder datasets, image reading, calibration and validation selection, MTCNN alignment."""
