"""Training curves as PNG and SVG (matplotlib, Agg backend: no display needed).

HUJI 1.2 plots train and test accuracy against iterations ("a data point every 500
iterations"), HUJI 3.1.2 the loss, HUJI 4.1 the train/test accuracies "as well as their
ratio" (here test/train: 1.0 means no overfitting). :func:`plot_runs` overlays several runs.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import check_utf8_name
from cnnlab.common.plotting import pyplot, save_figure
from cnnlab.training.runlog import read_metrics

FIGURES = {
    "accuracy": ("accuracy", (("train_acc", "train", "--"), ("test_acc", "test", "-"))),
    "loss": ("loss", (("train_loss", "train", "--"), ("test_loss", "test", "-"))),
    "ratio": ("test / train accuracy", (("ratio", "", "-"),)),
}


def _series(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["iteration"], r[key]) for r in records
           if r.get("kind") == "eval" and r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_runs(runs: list[Path | str], out_dir: Path | str,
              labels: list[str] | None = None) -> list[Path]:
    """Overlay the eval curves of ``runs`` into ``out_dir/{accuracy,loss,ratio}.{png,svg}``."""
    plt = pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = []
    for i, run in enumerate(runs):
        run = Path(run)
        check_utf8_name(run, "run")
        if not (run / "metrics.jsonl").is_file():
            raise CnnlabError(f"{run} is not a run folder (no metrics.jsonl)")
        data.append((labels[i] if labels else run.name, read_metrics(run)))
    written = []
    for fig_name, (ylabel, keys) in FIGURES.items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for j, (label, records) in enumerate(data):
            color = f"C{j % 10}"
            for key, which, style in keys:
                xs, ys = _series(records, key)
                if xs:
                    name = f"{label} {which}".strip() if len(data) > 1 else (which or label)
                    ax.plot(xs, ys, style, color=color, marker="." if len(xs) < 40 else None,
                            label=name)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        if fig_name == "loss":
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
        ax.set_title(ylabel if len(data) > 1 else f"{data[0][0]}: {ylabel}")
        fig.tight_layout()
        written += save_figure(fig, out_dir / fig_name, dpi=120)
        plt.close(fig)
    return written


def plot_run(run_dir: Path | str) -> list[Path]:
    """The plots of one run into ``run_dir/plots/``."""
    return plot_runs([run_dir], Path(run_dir) / "plots")
