"""Synthetic adverse-weather street scenes with exact Cityscapes trainIds, in the ACDC layout.

`generate_dataset` writes a dataset; `render_frame` draws one frame; the weather effects in
`seg_kd_train.data.synth.weather` (`augment_weather`) also apply to real images.
"""

from seg_kd_train.data.synth.weather import CONDITIONS, augment_weather
from seg_kd_train.data.synth.writer import generate_dataset, render_frame

__all__ = ['CONDITIONS', 'augment_weather', 'generate_dataset', 'render_frame']
