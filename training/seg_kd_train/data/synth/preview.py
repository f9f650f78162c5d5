"""Contact sheet of a dataset in the ACDC layout: one row per condition, images beside labels."""

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from seg_kd_ros.postprocess import PaletteTable
from seg_kd_train.data.acdc import AcdcDataset
from seg_kd_train.data.cityscapes_labels import CITYSCAPES_PALETTE


def contact_sheet(
    root: str | Path,
    out_path: str | Path,
    conditions: Sequence[str],
    split: str = 'train',
    per_row: int = 3,
    tile_width: int = 384,
) -> Path:
    """Write a PNG: rows = conditions, columns = (image, coloured trainIds) pairs.

    The frames are read back through `AcdcDataset`, so the sheet shows what training will see.

    Args:
        root: dataset root in the ACDC layout.
        out_path: PNG to write.
        conditions: one row each.
        split: split to take the frames from.
        per_row: image/label pairs per row.
        tile_width: width of each tile in pixels.

    Returns:
        The path written.
    """
    colours = PaletteTable(CITYSCAPES_PALETTE)
    rows = []
    for cond in conditions:
        ds = AcdcDataset(root, split, conditions=(cond,))
        tiles = []
        for i in range(min(per_row, len(ds))):
            sample = ds[i]
            h, w = sample['label'].shape
            size = (tile_width, max(1, round(tile_width * h / w)))
            img = cv2.resize(sample['image'], size, interpolation=cv2.INTER_AREA)
            lab = cv2.resize(colours.colorize(sample['label']), size,
                             interpolation=cv2.INTER_NEAREST)
            tiles += [img, lab]
        row = np.concatenate(tiles, axis=1)
        margin = np.full((row.shape[0], 90, 3), 255, np.uint8)
        cv2.putText(margin, cond, (6, row.shape[0] // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([margin, row], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255)
            for r in rows]
    sheet = np.concatenate(rows, axis=0)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f'could not write {out_path}')
    return out_path
