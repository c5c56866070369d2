# Pre-training: 'base' (discrimination) from scratch; 'dir' and 'dira' continue from 'base'.
# Resumable state lives in results/pretrain/<method>/.state/<variant>/, outside the declared outputs,
# so a crashed job resumes when rerun instead of starting over.


rule pretrain:
    input:
        train=processed("chestxray14", "train"),
        val=processed("chestxray14", "val"),
        init=lambda w: [] if w.variant == "base" else pretrained(f"{w.method}_base", "method.pt"),
    output:
        encoder="results/pretrain/{method}/{variant}/encoder.pt",
        unet="results/pretrain/{method}/{variant}/unet.pt",
        weights="results/pretrain/{method}/{variant}/method.pt",
        history="results/pretrain/{method}/{variant}/history.csv",
        meta="results/pretrain/{method}/{variant}/meta.json",
    params:
        out=lambda wildcards, output: Path(output.encoder).parent,
        init=lambda wildcards, input: f"--init {input.init}" if input.init else "",
        config=lambda w: pretrain_config(w.method),
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
        " --train {input.train} --val {input.val} --out {params.out} {params.init}"
        " --config {params.config:q} > {log} 2>&1"


rule import_official:
    input:
        lambda w: config["imported_weights"][w.init],
    output:
        encoder="results/imported/{init}/encoder.pt",
        unet="results/imported/{init}/unet.pt",
        meta="results/imported/{init}/meta.json",
    params:
        out=lambda wildcards, output: Path(output.encoder).parent,
    log:
        "logs/pretrain/import_{init}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira import-official {input} --out {params.out} > {log} 2>&1"
