# DiRA reproduction pipeline: raw data -> HDF5 caches -> pre-training -> fine-tuning -> evaluation
# (localization) -> tables, figures and the `snakemake --report` page.
# The default config (config/config.yaml) is the synthetic CPU demo; config/paper.yaml is the full study.
# Every rule runs one `dira` subcommand; the logic lives in the package, the DAG lives here.

from snakemake.utils import min_version

min_version("9.0")


configfile: workflow.source_path("config/config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
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
