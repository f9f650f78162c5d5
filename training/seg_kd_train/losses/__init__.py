"""Losses for segmentation training and distillation, one `nn.Module` each."""

from seg_kd_train.losses.adapters import Adapter
from seg_kd_train.losses.border import BorderFocalLoss, border_weights
from seg_kd_train.losses.ce import CrossEntropyLoss, OhemCrossEntropyLoss
from seg_kd_train.losses.feature import ChannelWiseDivergence, L2FeatureLoss, LADLoss
from seg_kd_train.losses.kd import PixelKLDivLoss
from seg_kd_train.losses.pidnet import (
                                        BoundaryAwareCELoss,
                                        BoundaryBCELoss,
                                        PidnetLoss,
                                        edge_target,
)

__all__ = [
    'Adapter', 'border_weights', 'BorderFocalLoss', 'BoundaryAwareCELoss', 'BoundaryBCELoss',
    'ChannelWiseDivergence', 'CrossEntropyLoss', 'edge_target', 'L2FeatureLoss', 'LADLoss',
    'OhemCrossEntropyLoss', 'PidnetLoss', 'PixelKLDivLoss',
]
