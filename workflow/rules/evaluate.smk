# Evaluation beyond the headline metric: weakly-supervised localization (appendix A.1, Table 5) with Grad-CAM
# of every fine-tuned ChestX-ray14 classifier on the boxed test images.


rule localize:
    input:
        model="results/finetune/chestxray14/{init}/seed{seed}/model.pt",
        test=processed("chestxray14", "test"),
    output:
        boxes="results/localization/{init}/seed{seed}/boxes.csv",
        accuracy="results/localization/{init}/seed{seed}/accuracy.csv",
        examples="results/localization/{init}/seed{seed}/examples.npz",
        summary="results/localization/{init}/seed{seed}/localization.json",
    params:
        data=lambda wildcards, input: Path(input.test).parent,
        out=lambda wildcards, output: Path(output.summary).parent,
        settings=job_settings("localize"),
    threads: config["threads"]
    log:
        "logs/localization/{init}/seed{seed}.log",
    conda:
        "../envs/dira.yaml"
    shell:
        "dira localize --model {input.model:q} --data {params.data:q} --init {wildcards.init}"
        " --seed {wildcards.seed} --out {params.out:q} --settings {params.settings:q} > {log:q} 2>&1"
