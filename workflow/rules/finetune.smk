# Fine-tuning: every (task, init, seed); inits are 'random' and '<method>_<variant>'.


rule finetune:
    input:
        data=lambda w: [processed(w.task, split) for split in SPLITS],
        weights=lambda w: pretrained(w.init),
    output:
        metrics="results/finetune/{task}/{init}/seed{seed}/metrics.json",
        predictions="results/finetune/{task}/{init}/seed{seed}/predictions.npz",
    params:
        data=lambda wildcards, input: Path(input.data[0]).parent,
        out=lambda wildcards, output: Path(output.metrics).parent,
        weights=lambda wildcards, input: f"--weights {input.weights}" if input.weights else "",
        config=job_config("model", "finetune"),
    threads: config["threads"]
    log:
        "logs/finetune/{task}/{init}/seed{seed}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira finetune --task {wildcards.task} --data {params.data} --init {wildcards.init}"
        " {params.weights} --seed {wildcards.seed} --out {params.out}"
        " --config {params.config:q} > {log} 2>&1"
