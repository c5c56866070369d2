# Tables (mean ± std over seeds, t-test of each DiRA variant against its base), the cross-task study
# tables beside the paper's values, and figures.


localrules:
    aggregate,
    aggregate_fraction,
    compare,
    figure,


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
        "dira aggregate --task {wildcards.task} --runs {params.runs}"
        " --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


use rule aggregate as aggregate_fraction with:
    input:
        metrics=lambda w: [f"{run}/metrics.json" for run in finetune_runs(w.task, w.percent)],
        predictions=lambda w: [f"{run}/predictions.npz" for run in finetune_runs(w.task, w.percent)],
    output:
        csv="results/tables/label_fraction/{task}_{percent}pct.csv",
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
        tables=lambda w: " ".join(f"--table {spec}" for spec in study_tables(w.kind)),
    wildcard_constraints:
        kind="transfer|ablation|fraction",
    log:
        "logs/report/compare_{kind}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira compare --kind {wildcards.kind} {params.tables}"
        " --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


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
        "dira figures --table {input.table} --out {output} --title {wildcards.task:q} > {log} 2>&1"
