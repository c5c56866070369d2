# Configuration validation and the helpers the rules share (no rules in this file).

import json
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

from dira.config import ConfigError, validate


# Validate against the workflow's JSON schema and fill in its defaults. The package's validator (the one
# the `dira` CLI uses too) reports each problem as one line naming the key, e.g.
# "pretrain.batch_size: 'abc' is not of type 'integer'", instead of dumping the schema.
try:
    config.update(validate(config))
except ConfigError as err:
    raise WorkflowError(str(err)) from None

SPLITS = ("train", "val", "test")
SEGMENTATION_TASKS = ("siim", "montgomery")
# Pre-training always reads ChestX-ray14; the others only when a task needs them.
DATASETS = list(dict.fromkeys(["chestxray14", *config["tasks"]]))
INITS = list(dict.fromkeys([
    *config["inits"],
    *(f"{m}_{v}" for m in config["methods"] for v in config["variants"]),
    *config["imported_weights"],
]))


wildcard_constraints:
    method="|".join(config["methods"]) or "none",
    variant="base|dir|dira",
    seed=r"\d+",
    percent=r"\d+(\.\d+)?",
    task="|".join(config["tasks"]) or "none",


def job_config(*sections):
    """The config sections one job depends on, as JSON for `dira --config`.

    Passing only these keeps Snakemake's params trigger precise: changing the fine-tuning
    settings reruns fine-tuning, not pre-training.
    """
    return json.dumps({key: config[key] for key in ("device", "threads", *sections)}, sort_keys=True)


def dataset_job_config(name, *sections):
    """Like job_config plus only dataset `name`'s section (so one dataset's settings never rerun another's jobs)."""
    subset = {key: config[key] for key in ("device", "threads", *sections)}
    subset["datasets"] = {name: config["datasets"][name]}
    return json.dumps(subset, sort_keys=True)


def pretrain_config(method):
    """Like job_config, without the other methods' sections (so tuning one method reruns only its jobs)."""
    others = {m for m in ("mocov2", "simsiam", "barlowtwins") if m != method}
    pretrain = {k: v for k, v in config["pretrain"].items() if k not in others}
    return json.dumps({"device": config["device"], "threads": config["threads"], "model": config["model"],
                       "pretrain": pretrain}, sort_keys=True)


def dataset_root(name):
    return config["datasets"][name]["root"]


# The synthetic writers, like the real archives, unpack into a named folder for these datasets.
SYNTHETIC_SUBFOLDER = {"chexpert": "CheXpert-v1.0-small", "montgomery": "MontgomerySet"}


def located(name):
    """Marker written by `dira locate` once a real dataset is found in place (kept out of the dataset's folder)."""
    return f"data/located/{name}.json"


def raw_inputs(name):
    """What prepare waits for: the synthetic writer's completion marker, or the marker of the located real data."""
    if config["datasets"][name]["source"] == "synthetic":
        return [f"{dataset_root(name)}/dira_synthetic.json"]
    return [located(name)]


def locate_options(name):
    """`dira locate` flags: download the public files first (when configured), files only some configs need."""
    settings = config["datasets"][name]
    flags = ["--download"] if settings.get("download") else []
    if name == "chexpert" and settings["evaluation"] == "test":
        flags += ["--require", "test_labels.csv"]
    return " ".join(flags)


def synthetic_out(name, marker):
    """Where `dira synth` must write so that the dataset lands in its configured root (the marker's folder)."""
    root = Path(marker).parent
    sub = SYNTHETIC_SUBFOLDER.get(name)
    if sub is None:
        return str(root)
    if root.name != sub:
        raise WorkflowError(f"datasets.{name}.root: a synthetic {name} is written into a folder named {sub}; "
                            f"got {root}")
    return str(root.parent)


def synthetic_count(name):
    synthetic = config["datasets"][name]["synthetic"]
    return synthetic["patients"] if "patients" in synthetic else synthetic["images"]


def processed(name, split):
    return f"data/processed/{name}/{split}.h5"


def pretrained(init, filename="encoder.pt"):
    """The pre-training output an init name refers to ('random' has none)."""
    if init == "random":
        return []
    if init in config["imported_weights"]:
        return f"results/imported/{init}/{filename}"
    method, variant = init.rsplit("_", 1)
    return f"results/pretrain/{method}/{variant}/{filename}"


def pretrain_launcher():
    """`dira`, or torchrun starting one `dira` process per GPU (DDP) when a job has several."""
    gpus = config["pretrain"]["gpus"]
    return f"torchrun --standalone --nproc_per_node {gpus} -m dira.cli" if gpus > 1 else "dira"


# The fine-tuning settings each kind of run reads: a job sees only these, so changing one kind's recipe
# (or adding a label-fraction study) reruns no other job.
FINETUNE_KEYS = {
    "classification": ["batch_size", "num_workers", "max_epochs", "lr", "lr_factor", "lr_patience", "patience",
                       "crop_scale", "rotation", "flip_prob"],
    "segmentation": ["num_workers", "segmentation"],
}


def finetune_config(task, fraction_run=False):
    kind = "segmentation" if task in SEGMENTATION_TASKS else "classification"
    keys = FINETUNE_KEYS[kind] + (["fraction_seed"] if fraction_run else [])
    subset = {key: config[key] for key in ("device", "threads", "model")}
    subset["finetune"] = {key: config["finetune"][key] for key in keys}
    subset["datasets"] = {task: config["datasets"][task]}
    return json.dumps(subset, sort_keys=True)


def init_file(task):
    """Segmentation starts from the whole pre-trained U-Net (DiRA's decoder is part of what transfers)."""
    return "unet.pt" if task in SEGMENTATION_TASKS else "encoder.pt"


def percent(fraction):
    return f"{fraction * 100:g}"


FRACTION_TASKS = [t for t in config["finetune"]["label_fraction_tasks"] if t in config["tasks"]]
PERCENTS = [percent(f) for f in config["finetune"]["label_fractions"]] if FRACTION_TASKS else []


# The label-fraction study fine-tunes the rows of the paper's Table 1: each method and its DiRA variant.
FRACTION_INITS = [i for i in INITS if i.endswith(("_base", "_dira"))]


def finetune_runs(task, pct=None):
    """Run folders of a task on all labels, or on `pct` percent of them."""
    if pct is None:
        return [f"results/finetune/{task}/{init}/seed{seed}" for init in INITS for seed in config["runs"]]
    folder = f"results/label_fraction/{task}/{pct}pct"
    return [f"{folder}/{init}/seed{seed}" for init in FRACTION_INITS for seed in config["runs"]]


def task_table(task, pct=None):
    return f"results/tables/{task}.csv" if pct is None else f"results/tables/label_fraction/{task}_{pct}pct.csv"


def study_tables(kind):
    """`dira compare --table` arguments: TASK[:PERCENT%]=PATH for every table the study compiles."""
    if kind == "fraction":
        specs = [f"{t}={task_table(t)}" for t in FRACTION_TASKS]
        specs += [f"{t}:{p}%={task_table(t, p)}" for t in FRACTION_TASKS for p in PERCENTS]
        return specs
    return [f"{t}={task_table(t)}" for t in config["tasks"]]


def studies():
    """The cross-task tables this configuration can fill."""
    kinds = ["transfer"]
    if "dir" in config["variants"] and "base" in config["variants"]:
        kinds.append("ablation")
    if PERCENTS:
        kinds.append("fraction")
    return kinds


def fraction_tables(task):
    """`dira figures fractions --table` arguments of one task: all labels and each fraction."""
    return [f"{task}={task_table(task)}", *(f"{task}:{p}%={task_table(task, p)}" for p in PERCENTS)]


# Localization (Table 5) scores every ChestX-ray14 classifier; Fig. 6 sets each base method beside its DiRA.
LOCALIZES = "chestxray14" in config["tasks"]
HEATMAP_METHODS = [m for m in config["methods"] if {"base", "dira"} <= set(config["variants"])]


def localization_runs():
    return [f"results/localization/{init}/seed{seed}" for init in INITS for seed in config["runs"]] if LOCALIZES else []


def heatmap_examples(method):
    """(init, examples.npz) of the figure's rows: the base method over its DiRA variant, first seed."""
    seed = config["runs"][0]
    return [(f"{method}_{v}", f"results/localization/{method}_{v}/seed{seed}/examples.npz") for v in ("base", "dira")]


def final_outputs():
    localization = [
        *(f"results/tables/table5_localization.{ext}" for ext in ("csv", "md", "tex")),
        *(f"results/figures/localization_{method}.png" for method in HEATMAP_METHODS),
    ]
    return [
        *(f"results/tables/{task}.{ext}" for task in config["tasks"] for ext in ("csv", "md")),
        *(f"results/figures/{task}.png" for task in config["tasks"]),
        *(f"results/tables/{kind}.{ext}" for kind in studies() for ext in ("csv", "md")),
        *(localization if LOCALIZES else []),
        *(f"results/figures/label_fraction_{task}.png" for task in FRACTION_TASKS if PERCENTS),
    ]


REPORT = "results/report.html"


def write_report():
    """After a run that leaves every final output in place, rebuild the HTML report of all tables and figures.

    Snakemake builds reports only in a run of its own (`snakemake --report`), so this starts one, with the
    run's complete (validated) configuration, so that it sees the same DAG. A report that fails to build is a
    warning, never a failed run: the results themselves are done.
    """
    if not all(Path(path).exists() for path in final_outputs()):
        return
    settings = Path(".snakemake/dira_report_config.yaml")
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "--snakefile", workflow.main_snakefile, "--configfile",
               str(settings), "--report", REPORT, "--nolock"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 0:
        print(f"Report of every table and figure: {REPORT}")
    else:
        print(f"warning: the report was not built ({' '.join(command)}):\n{done.stderr[-2000:]}", file=sys.stderr)
