"""seg_kd_ros: the on-robot half: a segmentation node and its inference backends."""
