# Pre-training: 'base' (the method alone) from scratch; 'dir' and 'dira' continue from 'base'. The 2D methods
# pre-train on ChestX-ray14, TransVW (3D) on LUNA16's visual words (discover.smk).
# Resumable state lives in results/pretrain/<method>/.state/<variant>/, outside the declared outputs,
# so a crashed job resumes when rerun instead of starting over.


rule pretrain:
    input:
        train=lambda w: pretrain_data(w.method, "train"),
        val=lambda w: pretrain_data(w.method, "val"),
        init=lambda w: [] if w.variant == "base" else pretrained(registry.pretrained_init(w.method, "base"), "method.pt"),
    output:
        encoder="results/pretrain/{method}/{variant}/encoder.pt",
        unet="results/pretrain/{method}/{variant}/unet.pt",
        weights="results/pretrain/{method}/{variant}/method.pt",
        history="results/pretrain/{method}/{variant}/history.csv",
        meta="results/pretrain/{method}/{variant}/meta.json",
    params:
        out=lambda wildcards, output: Path(output.encoder).parent,
        init=lambda wildcards, input: f"--init {shlex.quote(input.init)}" if input.init else "",
        settings=lambda w: job_settings("pretrain", method=w.method),
        launcher=pretrain_launcher(),
    threads: config["threads"]
    resources:
        gpu=config["pretrain"]["gpus"],
    log:
        "logs/pretrain/{method}/{variant}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "{params.launcher} pretrain --method {wildcards.method} --variant {wildcards.variant}"
        " --train {input.train:q} --val {input.val:q} --out {params.out:q} {params.init}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule import_official:
    input:
        lambda w: config["imported_weights"][w.init],
    output:
        encoder="results/imported/{init}/encoder.pt",
        unet="results/imported/{init}/unet.pt",
        meta="results/imported/{init}/meta.json",
    params:
        out=lambda wildcards, output: Path(output.encoder).parent,
        settings=job_settings("import"),
    log:
        "logs/pretrain/import_{init}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira import-official {input:q} --out {params.out:q} --settings {params.settings:q} > {log:q} 2>&1"


# Table 2's supervised ChestX-ray14 baseline: a classifier trained on ChestX-ray14's labels (from random or the
# ImageNet weights, `supervised.chestxray14.init`), whose encoder then initialises the other tasks.
rule pretrain_supervised:
    input:
        data=[processed("chestxray14", split) for split in SPLITS],
        weights=lambda w: pretrained(supervised_source_init()),
    output:
        encoder=f"{SUPERVISED_DIR}/encoder.pt",
        meta=f"{SUPERVISED_DIR}/meta.json",
        metrics=f"{SUPERVISED_DIR}/run/metrics.json",
        predictions=f"{SUPERVISED_DIR}/run/predictions.npz",
        model=temp(f"{SUPERVISED_DIR}/run/model.pt"),
    params:
        data=lambda wildcards, input: Path(input.data[0]).parent,
        run=lambda wildcards, output: Path(output.model).parent,
        out=lambda wildcards, output: Path(output.encoder).parent,
        init=supervised_source_init(),
        seed=config["supervised"]["chestxray14"]["seed"],
        weights=lambda wildcards, input: f"--weights {shlex.quote(input.weights)}" if input.weights else "",
        settings=job_settings("finetune", task="chestxray14"),
    threads: config["threads"]
    log:
        "logs/pretrain/supervised_chestxray14.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "(dira finetune --task chestxray14 --data {params.data:q} --init {params.init:q} {params.weights}"
        " --seed {params.seed} --out {params.run:q} --settings {params.settings:q}"
        " && dira export-encoder --model {output.model:q} --out {params.out:q}) > {log:q} 2>&1"
