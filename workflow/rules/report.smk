# Tables (mean ± std over seeds, t-test of each DiRA variant against its base) and figures.


localrules:
    aggregate,
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
