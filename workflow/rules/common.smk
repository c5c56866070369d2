# The run's validated configuration, the paths of every artefact and the target lists (no rules here).
# What a dataset, task, method or initialisation is comes from the package's registry (dira/registry.py);
# which settings a job reads comes from dira/stages.py.

import json
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from dira import registry
from dira.config import ConfigError, validate
from dira.stages import select, stage_keys


# Validate against the package's JSON schema and fill in its defaults. The validator reports each problem as
# one line naming the key, e.g. "pretrain.batch_size: 'abc' is not of type 'integer'".
try:
    config.update(validate(config))
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# The effective configuration exactly as this run sees it (what `dira config` prints for the same files); the
# report run re-reads it, and tests compare it with the config files.
EFFECTIVE_CONFIG = Path(".snakemake/dira/effective_config.yaml")
EFFECTIVE_CONFIG.parent.mkdir(parents=True, exist_ok=True)
EFFECTIVE_CONFIG.write_text(yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False))

SPLITS = ("train", "val", "test")
PRETRAIN_DATASET = "chestxray14"  # 2D pre-training reads ChestX-ray14's training split, labels unused
PRETRAIN_DATASET_3D = "luna16"  # 3D pre-training reads LUNA16's visual words (dira discover)
VISUAL_WORDS = "data/processed/visual_words"
METHODS_2D = [m for m in config["methods"] if registry.METHODS[m].dims == 2]
METHODS_3D = [m for m in config["methods"] if registry.METHODS[m].dims == 3]


def _task_dims(task):
    return registry.TASKS[task].dims


def _available_volume_datasets():
    """The 3D sets to prepare: those configured, those of the 3D tasks and LUNA16 for 3D pre-training, less PE
    when neither PE set is there (the paper's PE-CAD is private)."""
    wanted = [*config["volume_datasets"], *(registry.TASKS[t].dataset for t in config["tasks"] if _task_dims(t) == 3),
              *([PRETRAIN_DATASET_3D] if METHODS_3D else [])]
    names = list(dict.fromkeys(wanted))
    pe = config["datasets"]["pe"]
    if "pe" in names and pe["source"] == "real" and not pe["pe_cad"]["splits_dir"]:
        from dira.data.sources.pe import find_cad_pe, unavailable

        if find_cad_pe(Path(pe["root"])) is None:
            logger.warning(f"pe: skipped. {unavailable(Path(pe['root']))}")
            names.remove("pe")
    return names


VOLUME_DATASETS = _available_volume_datasets()
# The configured tasks whose data this run has (a 3D task whose set was skipped, PE, is left out with it).
TASKS = [t for t in config["tasks"] if _task_dims(t) == 2 or registry.TASKS[t].dataset in VOLUME_DATASETS]
TASKS_2D = [t for t in TASKS if _task_dims(t) == 2]
IMAGE_DATASETS = list(dict.fromkeys([*([PRETRAIN_DATASET] if METHODS_2D or TASKS_2D else []), *TASKS_2D]))
DATASETS = [*IMAGE_DATASETS, *VOLUME_DATASETS]
PRETRAINED = [registry.pretrained_init(m, v) for m in config["methods"] for v in config["variants"]
              if v in registry.METHODS[m].variants]


def imagenet_weights():
    """The configured torchvision ImageNet weights file, or None when not configured or not on disk."""
    path = config["supervised"]["imagenet_weights"]
    return path if path and Path(path).is_file() else None


def _baseline_inits():
    inits = list(config["inits"])
    if "supervised_imagenet" in inits and imagenet_weights() is None:
        logger.warning(f"supervised_imagenet: skipped, its weights file (supervised.imagenet_weights = "
                       f"{config['supervised']['imagenet_weights']!r}) is not on disk; Table 2 shows the paper's "
                       "values for it. Put a torchvision ResNet state dict there to run it.")
        inits.remove("supervised_imagenet")
    if "supervised_chestxray14" in inits and supervised_source_init() == "supervised_imagenet" \
            and imagenet_weights() is None:
        logger.warning("supervised_chestxray14: skipped, it trains from supervised_imagenet, whose weights "
                       "file is not on disk.")
        inits.remove("supervised_chestxray14")
    return inits


def supervised_source_init():
    return config["supervised"]["chestxray14"]["init"]


BASELINE_INITS = _baseline_inits()
INITS = list(dict.fromkeys([*BASELINE_INITS, *PRETRAINED, *config["imported_weights"]]))


def task_inits(task):
    """Every init fine-tuned on a task: of the task's dimensionality (no 2D weights on a 3D task), and not the
    supervised ChestX-ray14 model on its own task."""
    return [i for i in INITS if registry.SUPERVISED_SOURCE_TASK.get(i) != task and registry.init_fits_task(i, task)]


wildcard_constraints:
    method="|".join(config["methods"]) or "none",
    variant="|".join(registry.VARIANTS),
    init="|".join(INITS),
    seed=r"\d+",
    percent=r"\d+(\.\d+)?",
    task="|".join(TASKS) or "none",


def job_settings(stage, **job):
    """The settings one job reads (dira/stages.py), as JSON for `dira <stage> --settings`.

    Handing each job exactly its keys keeps Snakemake's params trigger precise: changing the fine-tuning
    settings reruns fine-tuning, not pre-training, and one method's settings rerun only its own jobs.
    """
    return json.dumps(select(config, stage_keys(stage, **job)), sort_keys=True)


# ---------------------------------------------------------------------------------------------- data paths


def dataset_root(name):
    return config["datasets"][name]["root"]


def located(name):
    """Marker that a dataset is in place: written by `dira locate` once the real one is found, or by `dira synth
    --stamp` once the synthetic one is complete. It is kept out of the dataset's folder: Snakemake deletes the
    output of a job it did not see finish, and no file of a dataset may go that way."""
    return f"data/located/{name}.json"


def raw_inputs(name):
    """What prepare waits for: the dataset's marker in data/located/, whatever its source."""
    settings = config["datasets"][name]
    if settings["source"] == "real" and name == "pe" and settings["pe_cad"]["splits_dir"]:
        return []  # the private PE-CAD has no fixed layout to locate: `dira prepare pe` checks its files
    return [located(name)]


def locate_options(name):
    """`dira locate` flags: download the public files first (when configured), files only some configs need."""
    settings = config["datasets"][name]
    flags = ["--download"] if settings.get("download") else []
    if name == "chexpert" and settings["evaluation"] == "test":
        flags += ["--require", "test_labels.csv"]
    return " ".join(flags)


def synthetic_out(name):
    """Where `dira synth` must write so that the dataset lands in its configured root."""
    root = Path(dataset_root(name))
    sub = registry.DATASETS[name].synthetic_subfolder
    if not sub:
        return str(root)
    if root.name != sub:
        raise WorkflowError(f"datasets.{name}.root: a synthetic {name} is written into a folder named {sub}; "
                            f"got {root}")
    return str(root.parent)


def processed(name, split):
    return f"data/processed/{name}/{split}.h5"


def task_data(task):
    """What a task's fine-tuning reads: its 2D split caches, or everything its 3D set's preparation writes."""
    if _task_dims(task) == 3:
        return prepared_files(registry.TASKS[task].dataset)
    return [processed(task, split) for split in SPLITS]


def pretrain_data(method, split):
    """A method's pre-training split: ChestX-ray14's images (2D) or LUNA16's visual words (3D)."""
    if registry.METHODS[method].dims == 3:
        return f"{VISUAL_WORDS}/{split}.h5"
    return processed(PRETRAIN_DATASET, split)


SHARDS = config["prepare"]["volume_shards"]
SHARDED = [name for name in VOLUME_DATASETS if registry.DATASETS[name].shardable and SHARDS > 1]


def shard_dir(name, shard):
    return f"data/interim/{name}/shard{shard}"


def shard_file(name, shard, file):
    return f"{shard_dir(name, shard)}/{file}"


def prepared_files(name):
    """Everything `dira prepare <name>` writes (2D: the three split caches; 3D: its crop caches and splits)."""
    return [f"data/processed/{name}/{file}" for file in registry.DATASETS[name].cache_files]


# ------------------------------------------------------------------------------------------ weights paths

SUPERVISED_DIR = "results/pretrain/supervised_chestxray14"


def pretrained(init, filename="encoder.pt"):
    """The pre-training output of an init (its encoder, or the whole U-Net); none for 'random'."""
    if init == "random":
        return []
    if init == "supervised_imagenet":
        return imagenet_weights() or []
    if init == "supervised_chestxray14":
        return f"{SUPERVISED_DIR}/encoder.pt"  # a classifier's encoder: no decoder to transfer
    if init in config["imported_weights"]:
        return f"results/imported/{init}/{filename}"
    method, variant = registry.split_pretrained_init(init)
    return f"results/pretrain/{method}/{variant}/{filename}"


def init_weights(init, task):
    return pretrained(init, registry.TASKS[task].init_file)


def pretrain_launcher():
    """`dira`, or torchrun starting one `dira` process per GPU (DDP) when a job has several."""
    gpus = config["pretrain"]["gpus"]
    return f"torchrun --standalone --nproc_per_node {gpus} -m dira.cli" if gpus > 1 else "dira"


# ------------------------------------------------------------------------------------------ target lists


def percent(fraction):
    return f"{fraction * 100:g}"


FRACTION_TASKS = [t for t in config["finetune"]["label_fraction_tasks"] if t in TASKS]
PERCENTS = [percent(f) for f in config["finetune"]["label_fractions"]] if FRACTION_TASKS else []
# The label-fraction study fine-tunes the rows of the paper's Table 1: each method and its DiRA variant.
FRACTION_INITS = [registry.pretrained_init(m, v) for m in config["methods"] for v in ("base", "dira")
                  if v in config["variants"]]


def finetune_runs(task, pct=None):
    """Run folders of a task on all labels, or on `pct` percent of them."""
    if pct is None:
        return [f"results/finetune/{task}/{init}/seed{seed}" for init in task_inits(task) for seed in config["runs"]]
    folder = f"results/label_fraction/{task}/{pct}pct"
    inits = [i for i in FRACTION_INITS if registry.init_fits_task(i, task)]
    return [f"{folder}/{init}/seed{seed}" for init in inits for seed in config["runs"]]


def task_table(task, pct=None):
    return f"results/tables/{task}.csv" if pct is None else f"results/tables/label_fraction/{task}_{pct}pct.csv"


def study_tables(kind):
    """`dira compare --table` arguments: TASK[:PERCENT%]=PATH for every table the study compiles."""
    if kind == "fraction":
        specs = [f"{t}={task_table(t)}" for t in FRACTION_TASKS]
        specs += [f"{t}:{p}%={task_table(t, p)}" for t in FRACTION_TASKS for p in PERCENTS]
        return specs
    return [f"{t}={task_table(t)}" for t in TASKS]


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
LOCALIZES = "chestxray14" in TASKS
HEATMAP_METHODS = [m for m in METHODS_2D if {"base", "dira"} <= set(config["variants"])]


def localization_runs():
    if not LOCALIZES:
        return []
    return [f"results/localization/{init}/seed{seed}" for init in task_inits("chestxray14") for seed in config["runs"]]


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
        *(f"results/tables/{task}.{ext}" for task in TASKS for ext in ("csv", "md")),
        *(f"results/figures/{task}.png" for task in TASKS),
        *(f"results/tables/{kind}.{ext}" for kind in studies() for ext in ("csv", "md")),
        *(localization if LOCALIZES else []),
        *(f"results/figures/label_fraction_{task}.png" for task in FRACTION_TASKS if PERCENTS),
        *(file for name in VOLUME_DATASETS for file in prepared_files(name)),
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
    settings = EFFECTIVE_CONFIG.with_name("report_config.yaml")  # the report run rewrites EFFECTIVE_CONFIG
    settings.write_text(EFFECTIVE_CONFIG.read_text())
    command = [sys.executable, "-m", "snakemake", "--snakefile", workflow.main_snakefile, "--configfile",
               str(settings), "--report", REPORT, "--nolock"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 0:
        print(f"Report of every table and figure: {REPORT}")
    else:
        print(f"warning: the report was not built ({' '.join(command)}):\n{done.stderr[-2000:]}", file=sys.stderr)
