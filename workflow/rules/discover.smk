# TransVW's self-discovery of anatomical visual words on LUNA16 (3D pre-training's data): an autoencoder on the
# training scans, one feature per patient, per class a reference patient and its nearest neighbours cut at one
# coordinate, written as pseudo-labelled cubes. It reads the raw scans and the preparer's split of them.


rule discover:
    input:
        raw=raw_inputs(PRETRAIN_DATASET_3D),
        splits=f"data/processed/{PRETRAIN_DATASET_3D}/splits.json",
    output:
        train=f"{VISUAL_WORDS}/train.h5",
        val=f"{VISUAL_WORDS}/val.h5",
        summary=f"{VISUAL_WORDS}/discovery.json",
        autoencoder=f"{VISUAL_WORDS}/autoencoder.pt",
    params:
        root=lambda wildcards: dataset_root(PRETRAIN_DATASET_3D),
        out=lambda wildcards, output: Path(output.train).parent,
        settings=job_settings("discover"),
    threads: config["threads"]
    log:
        "logs/discover/luna16.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira discover --luna16 {params.root:q} --splits {input.splits:q} --out {params.out:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"
