# The trained network as a bioimage.io model package (unet export; format 0.5) for Fiji
# (deepImageJ), ilastik, napari and QuPath: weights (state dict + TorchScript), axes, valid
# sizes, halo, the checkpoint's normalisation as preprocessing, a test input and output
# from the centre of the dataset's raw images, a cover and documentation stating the
# metrics of results/eval/{dataset}.json. An optional target (in `rule all` when config
# export.enabled); needs the bioimageio extra (pip install -e ".[bioimageio]").
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).

# `unet export` flags of the export section: authors, license, tags, preset.
EXPORT = config["export"]
EXPORT_ARGS = " ".join(
    [f"--author {shlex.quote(str(name))}" for name in EXPORT["authors"]]
    + [f"--license {shlex.quote(str(EXPORT['license']))}"]
    + [f"--tag {shlex.quote(str(tag))}" for tag in EXPORT["tags"]]
    + (
        [f"--preset {shlex.quote(str(EXPORT['preset']))}"]
        if EXPORT.get("preset")
        else []
    )
)


rule export:
    input:
        checkpoint=lambda wildcards: trained_checkpoint(wildcards.dataset),
        metrics=f"{RESULTS}/eval/{{dataset}}.json",
        sample=f"{RESULTS}/data/{{dataset}}.zarr",
    output:
        f"{RESULTS}/export/{{dataset}}.bioimageio.zip",
    log:
        f"{LOGS}/export/{{dataset}}.log",
    benchmark:
        benchmark_file("export")
    conda:
        "../../envs/unet.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        name=lambda wildcards: shlex.quote(f"U-Net {wildcards.dataset}"),
        meta=EXPORT_ARGS,
    shell:
        "unet export {input.checkpoint} {output} --name {params.name}"
        " --sample {input.sample} --metrics {input.metrics} {params.meta}"
        " --threads {threads} > {log} 2>&1"
