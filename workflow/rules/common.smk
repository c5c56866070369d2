# Configuration validation and the helpers the rules share (no rules in this file).

import json
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

from dira.config import ConfigError, validate


# Validate against the workflow's JSON schema and fill in its defaults. The package's validator (the one
# the `dira` CLI uses too) reports each problem as one line naming the key, e.g.
# "pretrain.batch_size: 'abc' is not of type 'integer'", instead of dumping the schema.
try:
    schema = yaml.safe_load(Path(workflow.source_path("../schemas/config.schema.yaml")).read_text())
    config.update(validate(config, schema))
except ConfigError as err:
    raise WorkflowError(str(err)) from None

SPLITS = ("train", "val", "test")
INITS = list(dict.fromkeys([
    *config["inits"],
    *(f"{m}_{v}" for m in config["methods"] for v in config["variants"]),
    *config["imported_weights"],
]))


wildcard_constraints:
    method="|".join(config["methods"]) or "none",
    variant="base|dir|dira",
    seed=r"\d+",
    task="|".join(config["tasks"]) or "none",


def job_config(*sections):
    """The config sections one job depends on, as JSON for `dira --config`.

    Passing only these keeps Snakemake's params trigger precise: changing the fine-tuning
    settings reruns fine-tuning, not pre-training.
    """
    return json.dumps({key: config[key] for key in ("device", "threads", *sections)}, sort_keys=True)


def pretrain_config(method):
    """Like job_config, without the other methods' sections (so tuning one method reruns only its jobs)."""
    others = {m for m in ("mocov2", "simsiam", "barlowtwins") if m != method}
    pretrain = {k: v for k, v in config["pretrain"].items() if k not in others}
    return json.dumps({"device": config["device"], "threads": config["threads"], "model": config["model"],
                       "pretrain": pretrain}, sort_keys=True)


def dataset_root(name):
    return config["datasets"][name]["root"]


def raw_files(name):
    """Files that mark a raw dataset as present (the synthetic writer produces them too)."""
    root = dataset_root(name)
    files = {
        "chestxray14": [
            "Data_Entry_2017_v2020.csv",
            "BBox_List_2017.csv",
            "train_val_list.txt",
            "test_list.txt",
        ],
    }[name]
    return [f"{root}/{f}" for f in files]


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


def finetune_runs(task):
    return [f"results/finetune/{task}/{init}/seed{seed}" for init in INITS for seed in config["runs"]]


def final_outputs():
    return [
        *(f"results/tables/{task}.{ext}" for task in config["tasks"] for ext in ("csv", "md")),
        *(f"results/figures/{task}.png" for task in config["tasks"]),
    ]
