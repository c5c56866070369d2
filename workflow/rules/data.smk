# Data stage: write the synthetic stand-in (when configured), then preprocess into HDF5 caches.


# Only a synthetic source has a rule that writes it: real data are never overwritten.
if config["datasets"]["chestxray14"]["source"] == "synthetic":

    rule synth_chestxray14:
        output:
            raw_files("chestxray14"),
            marker=f"{dataset_root('chestxray14')}/dira_synthetic.json",
        params:
            root=lambda wildcards, output: Path(output.marker).parent,
            patients=config["datasets"]["chestxray14"]["synthetic"]["patients"],
            size=config["datasets"]["chestxray14"]["synthetic"]["image_size"],
            seed=config["datasets"]["chestxray14"]["synthetic"]["seed"],
        log:
            "logs/data/synth_chestxray14.log",
        conda:
            "../envs/dira.yaml"
        shell:
            "dira synth chestxray14 --out {params.root} --count {params.patients}"
            " --image-size {params.size} --seed {params.seed} > {log} 2>&1"


rule prepare_chestxray14:
    input:
        raw_files("chestxray14"),
    output:
        [processed("chestxray14", split) for split in SPLITS],
    params:
        root=lambda wildcards, input: Path(input[0]).parent,
        out=lambda wildcards, output: Path(output[0]).parent,
        config=job_config("prepare", "datasets"),
    threads: config["prepare"]["workers"]
    log:
        "logs/data/prepare_chestxray14.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira prepare chestxray14 --root {params.root} --out {params.out}"
        " --config {params.config:q} > {log} 2>&1"

