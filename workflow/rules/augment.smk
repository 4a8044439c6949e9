# One block of the augmentation cache: `per_block` augmented (raw, target, weight) tiles,
# deterministic from (dataset, seed, block). Blocks are independent jobs; `all` (and
# training) ask for augment_blocks(dataset) (see common.smk). Only the model's shape
# settings are passed, so changing e.g. drop-out does not rerun the blocks.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
rule augment:
    input:
        store=f"{RESULTS}/data/{{dataset}}.zarr",
        weights=f"{RESULTS}/data/{{dataset}}.weights.zarr",
    output:
        block=directory(f"{RESULTS}/augment/{{dataset}}/block-{{block}}.zarr"),
    log:
        f"{LOGS}/augment/{{dataset}}/block-{{block}}.log",
    benchmark:
        benchmark_file("augment", "{dataset}-{block}")
    wildcard_constraints:
        block=r"0|[1-9]\d*",
    conda:
        "../../envs/unet.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        n=config["augment"]["per_block"],
        seed=config["augment"]["seed"],
        augment=augment_args(),
        normalize=lambda wildcards: normalize_arg(wildcards.dataset),
        model=model_args(keys=("depth", "padding", "dims")),
    shell:
        "unet augment {input.store} {input.weights} --out {output.block}"
        " --block {wildcards.block} --n {params.n} --seed {params.seed}"
        " --threads {threads} {params.augment} {params.normalize} {params.model}"
        " > {log} 2>&1"
