# Data stage: write each synthetic stand-in, or find (and, where configured, download) each real dataset,
# then preprocess every dataset the study needs into HDF5 caches. No rule declares a file under a dataset's root
# as its output, so no rerun can delete one: real data are only ever read, and the synthetic writer's job is
# recorded by a stamp in data/located/ beside the real sets' markers (Snakemake deletes the output of a job it
# did not see finish: were that the set's own completion marker, `dira synth` would refuse the set it left).

for _name in DATASETS:
    if config["datasets"][_name]["source"] == "synthetic":

        rule:
            name:
                f"synth_{_name}"
            output:
                marker=located(_name),
            params:
                dataset=_name,
                out=lambda wildcards, name=_name: synthetic_out(name),
                settings=job_settings("synth", dataset=_name),
            log:
                f"logs/data/synth_{_name}.log",
            conda:
                "../envs/dira.yaml"
            shell:
                "dira synth {params.dataset} --out {params.out:q} --stamp {output.marker:q}"
                " --settings {params.settings:q} > {log:q} 2>&1"

    else:

        rule:
            name:
                f"locate_{_name}"
            output:
                marker=located(_name),
            params:
                dataset=_name,
                root=dataset_root(_name),
                options=locate_options(_name),
            localrule: True
            log:
                f"logs/data/locate_{_name}.log",
            conda:
                "../envs/dira.yaml"
            shell:
                # on failure, show the log (what is missing and how to obtain it) in Snakemake's own output
                "dira locate {params.dataset} --root {params.root:q} --out {output.marker:q} {params.options}"
                " > {log:q} 2>&1 || (cat {log:q} >&2; exit 1)"

    if _name in SHARDED:

        rule:
            name:
                f"prepare_{_name}_shard"
            wildcard_constraints:
                shard=r"\d+",
            input:
                raw_inputs(_name),
            output:
                # the gathered caches hold the same rows: the shards' copies go once gathered
                [temp(shard_file(_name, "{shard}", file)) for file in registry.DATASETS[_name].cache_files],
            params:
                dataset=_name,
                root=lambda wildcards, name=_name: dataset_root(name),
                out=lambda wildcards, output: Path(output[0]).parent,
                of=SHARDS,
                settings=job_settings("prepare", dataset=_name),
            threads: config["prepare"]["workers"]
            log:
                f"logs/data/prepare_{_name}_shard{{shard}}.log",
            conda:
                "../envs/dira.yaml"
            shell:
                "dira prepare {params.dataset} --root {params.root:q} --out {params.out:q}"
                " --shard {wildcards.shard}/{params.of} --settings {params.settings:q} > {log:q} 2>&1"

        rule:
            name:
                f"gather_{_name}"
            input:
                [shard_file(_name, shard, file) for shard in range(SHARDS)
                 for file in registry.DATASETS[_name].cache_files],
            output:
                prepared_files(_name),
            params:
                dataset=_name,
                shards=lambda wildcards, name=_name: [shard_dir(name, shard) for shard in range(SHARDS)],
                out=lambda wildcards, output: Path(output[0]).parent,
            log:
                f"logs/data/gather_{_name}.log",
            conda:
                "../envs/dira.yaml"
            shell:
                "dira gather {params.dataset} --shards {params.shards:q} --out {params.out:q} > {log:q} 2>&1"

        continue

    rule:
        name:
            f"prepare_{_name}"
        input:
            raw_inputs(_name),
        output:
            prepared_files(_name),
        params:
            dataset=_name,
            root=lambda wildcards, name=_name: dataset_root(name),
            out=lambda wildcards, output: Path(output[0]).parent,
            settings=job_settings("prepare", dataset=_name),
        threads: config["prepare"]["workers"]
        log:
            f"logs/data/prepare_{_name}.log",
        conda:
            "../envs/dira.yaml"
        shell:
            "dira prepare {params.dataset} --root {params.root:q} --out {params.out:q}"
            " --settings {params.settings:q} > {log:q} 2>&1"
