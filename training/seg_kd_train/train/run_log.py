"""The metrics log of a run (CSV files) and its curves (PNG), resumable.

`train_log.csv` has one row per logged step (lr, total loss, each loss term); `eval_log.csv` one
row per evaluation (mIoU and ECE per condition). On resume, rows after the resumed step are dropped
(they came from the part of the killed run that is being redone).
"""

import csv
from pathlib import Path

from seg_kd_ros.atomic_files import atomic_path


class CsvLog:
    """Append rows of named values to a CSV file; the header grows if new keys appear."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict] = []
        if self.path.is_file():
            with self.path.open(newline='') as f:
                self.rows = list(csv.DictReader(f))

    def truncate_after(self, step: int) -> None:
        """Drop rows whose step is greater than `step` (a resumed run redoes them)."""
        self.rows = [r for r in self.rows if int(float(r['step'])) <= step]
        self._write()

    def append(self, row: dict) -> None:
        """Add a row and rewrite the file."""
        self.rows.append({k: (f'{v:.6g}' if isinstance(v, float) else v) for k, v in row.items()})
        self._write()

    def _write(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys.extend(k for k in r if k not in keys)
        with atomic_path(self.path) as tmp, tmp.open('w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=keys or ['step'])
            writer.writeheader()
            writer.writerows(self.rows)


def plot_curves(train_csv: str | Path, eval_csv: str | Path, out_png: str | Path,
                title: str = '') -> Path:
    """Plot the loss terms and the mIoU per condition against the step into one PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    train = CsvLog(train_csv).rows
    evals = CsvLog(eval_csv).rows
    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [int(r['step']) for r in train]
        for key in [k for k in train[0] if k.startswith('loss')]:
            ax_loss.plot(steps, [float(r[key]) for r in train], label=key)
        ax_loss.set_yscale('log')
    ax_loss.set_xlabel('step')
    ax_loss.set_title('training loss')
    ax_loss.legend(fontsize=7)
    if evals:
        steps = [int(r['step']) for r in evals]
        for key in [k for k in evals[0] if k.startswith('miou_')]:
            ax_miou.plot(steps, [100 * float(r[key]) for r in evals], marker='o',
                         label=key[5:], linewidth=2.5 if key == 'miou_full' else 1.0)
        ax_miou.legend(fontsize=7)
    ax_miou.set_xlabel('step')
    ax_miou.set_title('val mIoU (%)')
    fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
