# Tables (mean ± std over seeds, t-test of each DiRA variant against its base), the cross-task study
# tables and Table 5 beside the paper's values, and figures; each is a `snakemake --report` entry.


localrules:
    aggregate,
    aggregate_fraction,
    compare,
    figure,
    localization_table,
    figure_heatmaps,
    figure_fractions,


rule aggregate:
    input:
        metrics=lambda w: [f"{run}/metrics.json" for run in finetune_runs(w.task)],
        predictions=lambda w: [f"{run}/predictions.npz" for run in finetune_runs(w.task)],
    output:
        csv=report(
            "results/tables/{task}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"task": "{task}", "format": "CSV"},
        ),
        md="results/tables/{task}.md",
    params:
        runs=lambda w: finetune_runs(w.task),
    log:
        "logs/report/aggregate_{task}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira aggregate --task {wildcards.task} --runs {params.runs:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


use rule aggregate as aggregate_fraction with:
    input:
        metrics=lambda w: [f"{run}/metrics.json" for run in finetune_runs(w.task, w.percent)],
        predictions=lambda w: [f"{run}/predictions.npz" for run in finetune_runs(w.task, w.percent)],
    output:
        csv=report(
            "results/tables/label_fraction/{task}_{percent}pct.csv",
            caption="../report/table.rst",
            category="Label fractions",
            labels={"task": "{task}", "labels": "{percent} %", "format": "CSV"},
        ),
        md="results/tables/label_fraction/{task}_{percent}pct.md",
    params:
        runs=lambda w: finetune_runs(w.task, w.percent),
    log:
        "logs/report/aggregate_{task}_{percent}pct.log",


rule compare:
    input:
        lambda w: [spec.split("=", 1)[1] for spec in study_tables(w.kind)],
    output:
        csv=report(
            "results/tables/{kind}.csv",
            caption="../report/study.rst",
            category="Studies",
            labels={"study": "{kind}", "format": "CSV"},
        ),
        md="results/tables/{kind}.md",
    params:
        tables=lambda w: " ".join(f"--table {shlex.quote(spec)}" for spec in study_tables(w.kind)),
    wildcard_constraints:
        kind="transfer|ablation|fraction",
    log:
        "logs/report/compare_{kind}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira compare --kind {wildcards.kind} {params.tables}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


rule figure:
    input:
        table="results/tables/{task}.csv",
    output:
        report(
            "results/figures/{task}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels={"task": "{task}", "kind": "bar chart"},
        ),
    log:
        "logs/report/figure_{task}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira figures bars --table {input.table:q} --out {output:q} --title {wildcards.task:q} > {log:q} 2>&1"


rule localization_table:
    input:
        [f"{run}/localization.json" for run in localization_runs()],
    output:
        csv=report(
            "results/tables/table5_localization.csv",
            caption="../report/table5.rst",
            category="Localization",
            labels={"table": "Table 5", "format": "CSV"},
        ),
        md="results/tables/table5_localization.md",
        tex="results/tables/table5_localization.tex",
    params:
        runs=localization_runs(),
    log:
        "logs/report/table5_localization.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira localization-table --runs {params.runs:q} --out-csv {output.csv:q} --out-md {output.md:q}"
        " --out-tex {output.tex:q} > {log:q} 2>&1"


rule figure_heatmaps:
    input:
        lambda w: [path for _, path in heatmap_examples(w.method)],
    output:
        report(
            "results/figures/localization_{method}.png",
            caption="../report/heatmaps.rst",
            category="Localization",
            labels={"method": "{method}", "kind": "Grad-CAM heatmaps (Fig. 6)"},
        ),
    params:
        examples=lambda w: " ".join(f"--examples {shlex.quote(f'{init}={path}')}" for init, path in heatmap_examples(w.method)),
    log:
        "logs/report/figure_localization_{method}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira figures heatmaps {params.examples} --out {output:q} > {log:q} 2>&1"


rule figure_fractions:
    input:
        lambda w: [spec.split("=", 1)[1] for spec in fraction_tables(w.task)],
    output:
        report(
            "results/figures/label_fraction_{task}.png",
            caption="../report/fractions.rst",
            category="Figures",
            labels={"task": "{task}", "kind": "label-fraction curves"},
        ),
    params:
        tables=lambda w: " ".join(f"--table {shlex.quote(spec)}" for spec in fraction_tables(w.task)),
    log:
        "logs/report/figure_label_fraction_{task}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira figures fractions {params.tables} --out {output:q} > {log:q} 2>&1"
