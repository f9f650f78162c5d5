"""seg_kd_train: the offline half of seg_kd_ros (datasets, models, distillation, export)."""
