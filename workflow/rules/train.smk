# Training (unet train): the model of the `model` section on the dataset's training split,
# with the `train` section's recipe, validated on its val split. Outputs in
# results/train/{dataset}/: best.pt (best validation Rand error; what `rule predict` reads),
# last.pt, validation.csv and curve.png. The tiles come from the augmentation cache blocks
# (the input; none with augment.cache false: augmented on the fly with the same settings).
# The run's state lives in results/train/{dataset}/resume/, which is not an output:
# Snakemake deletes the outputs of a killed job, not it, so rerunning a killed train job
# continues from its last checkpoint (after `snakemake --unlock` if Snakemake itself was
# killed). Changed `train`/`model` settings with a resume state present are refused (delete
# resume/ to start over). The log is appended to: it holds a resumed run's every part.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
# `unet train` flags: the train section, then the augmentation settings (used when
# augmenting on the fly, augment.cache false).
TRAIN_ARGS = " ".join(
    (
        f"--{'' if value else 'no-'}{key.replace('_', '-')}"
        if isinstance(value, bool)
        else f"--{key.replace('_', '-')} {value}"
    )
    for key, value in config["train"].items()
)
STREAM_ARGS = (
    f"{augment_args()} --per-block {config['augment']['per_block']}"
    f" --augment-seed {config['augment']['seed']}"
)


rule train:
    input:
        store=f"{RESULTS}/data/{{dataset}}.zarr",
        weights=f"{RESULTS}/data/{{dataset}}.weights.zarr",
        blocks=lambda wildcards: augment_blocks(wildcards.dataset),
    output:
        best=f"{RESULTS}/train/{{dataset}}/best.pt",
        last=f"{RESULTS}/train/{{dataset}}/last.pt",
        csv=report(
            f"{RESULTS}/train/{{dataset}}/validation.csv",
            caption="../report/training.rst",
            category="Training",
            labels={"dataset": "{dataset}", "file": "validation.csv"},
        ),
        curve=report(
            f"{RESULTS}/train/{{dataset}}/curve.png",
            caption="../report/training.rst",
            category="Training",
            labels={"dataset": "{dataset}", "file": "curve.png"},
        ),
    log:
        f"{LOGS}/train/{{dataset}}.log",
    benchmark:
        benchmark_file("train")
    conda:
        "../../envs/unet-gpu.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=16000,
    params:
        out=lambda wildcards, output: os.path.dirname(output.best),
        train=TRAIN_ARGS,
        model=model_args(),
        stream=STREAM_ARGS,
        normalize=lambda wildcards: normalize_arg(wildcards.dataset),
    shell:
        # passive OpenMP waiting: with the default spinning, a 2-core machine with one other
        # busy process ran the training step 1.5x (width 16, 572 tiles) to 80x (tiny
        # networks) slower than with it (measured)
        "OMP_WAIT_POLICY=PASSIVE unet train {input.store} {input.weights} --out {params.out}"
        " --blocks {input.blocks} {params.normalize} {params.train} {params.model}"
        " {params.stream}"
        " --threads {threads} >> {log} 2>&1"
