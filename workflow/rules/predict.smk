# Overlap-tile prediction (unet predict): a checkpoint over a dataset's raw images -> an
# OME-Zarr probability map, which `rule evaluate` scores. Not in `rule all`: the checkpoint
# comes from training (config predict.checkpoint names another). Snakemake removes the
# output of a failed job; to resume a killed long prediction instead, run the `unet
# predict` command of the log again: it computes only the chunks not yet written.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
PREDICT = config["predict"]


rule predict:
    input:
        checkpoint=lambda wildcards: trained_checkpoint(wildcards.dataset),
        source=f"{RESULTS}/data/{{dataset}}.zarr",
    output:
        directory(f"{RESULTS}/predict/{{dataset}}.zarr"),
    log:
        f"{LOGS}/predict/{{dataset}}.log",
    conda:
        "../../envs/unet-gpu.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=16000,
    params:
        dtype=PREDICT["dtype"],
        levels=PREDICT["levels"],
        batch=PREDICT["batch"],
        tile=f"--tile {PREDICT['tile']}" if PREDICT["tile"] else "",
        tta="--tta" if PREDICT["tta"] else "",
    shell:
        "unet predict {input.checkpoint} {input.source} {output} --dtype {params.dtype}"
        " --levels {params.levels} --batch {params.batch} {params.tile} {params.tta}"
        " --threads {threads} > {log} 2>&1"
