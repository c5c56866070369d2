# Fine-tuning: every (task, init, seed) on all labels, and the label-efficiency study on nested subsets.
# Inits are 'random' and '<method>_<variant>' of the task's dimensionality (2D or 3D); segmentation tasks start
# from the whole pre-trained U-Net.


rule finetune:
    input:
        data=lambda w: task_data(w.task),
        weights=lambda w: init_weights(w.init, w.task),
    output:
        metrics="results/finetune/{task}/{init}/seed{seed}/metrics.json",
        predictions="results/finetune/{task}/{init}/seed{seed}/predictions.npz",
        # fine-tuned weights live until localization has read them; `snakemake --notemp` keeps them all
        model=temp("results/finetune/{task}/{init}/seed{seed}/model.pt"),
    params:
        data=lambda wildcards, input: Path(input.data[0]).parent,
        out=lambda wildcards, output: Path(output.metrics).parent,
        weights=lambda wildcards, input: f"--weights {shlex.quote(input.weights)}" if input.weights else "",
        fraction=1,
        settings=lambda w: job_settings("finetune", task=w.task),
    threads: config["threads"]
    log:
        "logs/finetune/{task}/{init}/seed{seed}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira finetune --task {wildcards.task} --data {params.data:q} --init {wildcards.init}"
        " {params.weights} --seed {wildcards.seed} --fraction {params.fraction} --out {params.out:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


use rule finetune as finetune_fraction with:
    output:
        metrics="results/label_fraction/{task}/{percent}pct/{init}/seed{seed}/metrics.json",
        predictions="results/label_fraction/{task}/{percent}pct/{init}/seed{seed}/predictions.npz",
        model=temp("results/label_fraction/{task}/{percent}pct/{init}/seed{seed}/model.pt"),
    params:
        data=lambda wildcards, input: Path(input.data[0]).parent,
        out=lambda wildcards, output: Path(output.metrics).parent,
        weights=lambda wildcards, input: f"--weights {shlex.quote(input.weights)}" if input.weights else "",
        fraction=lambda w: float(w.percent) / 100,
        settings=lambda w: job_settings("finetune", task=w.task, fraction=True),
    log:
        "logs/label_fraction/{task}/{percent}pct/{init}/seed{seed}.log",
