# DiRA reproduction pipeline: raw data -> HDF5 caches (-> visual words for 3D) -> pre-training -> fine-tuning -> evaluation
# (localization) -> tables, figures and the `snakemake --report` page.
# Every rule runs one `dira` subcommand; the logic lives in the package, the DAG lives here.
#
# Configuration: a run given `--configfile X [Y ...]` uses exactly those files over the schema's defaults (the
# paper's values; dira/schema/config.schema.yaml). Only a run given no config file loads the synthetic demo,
# config/demo.yaml, so demo settings never leak into `--configfile config/paper.yaml`. `dira config
# --configfile X` prints the effective configuration; common.smk validates it.

from snakemake.utils import min_version

min_version("9.0")


if not workflow.overwrite_configfiles:

    configfile: workflow.source_path("config/demo.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/discover.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
    default_target: True


onsuccess:
    write_report()
