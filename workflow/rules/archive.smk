# Archive mode (unet predict-archive): the checkpoint over every image of the sample sheet
# that config archive.sheet names (TSV with columns id, path and any others; paths relative
# to the sheet's folder) into {outdir}/<id>.ome.zarr, with the predict section's options.
# The output is {outdir}/summary.csv: one row per image (shape, chunks, seconds, Mpx/s,
# status). Incremental: a rerun computes only new or changed images (size and mtime, or the
# content with archive.hash) and resumes interrupted ones. The sheet's images that exist are
# inputs, so a changed TIFF reruns the rule (a zarr store's folder may keep its mtime when
# chunks change: then `--forcerun predict_archive`). A bad image fails the job after the
# others are done; the log names it. Defined only when archive.sheet is set; not in `rule all`.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
ARCHIVE = config["archive"]
ARCHIVE_OUT = ARCHIVE["outdir"] or f"{RESULTS}/archive"


if ARCHIVE["sheet"]:

    rule predict_archive:
        input:
            checkpoint=trained_checkpoint(config["dataset"]),
            sheet=ARCHIVE["sheet"],
            images=archive_images,
        output:
            f"{ARCHIVE_OUT}/summary.csv",
        log:
            f"{LOGS}/predict_archive.log",
        benchmark:
            benchmark_file("predict_archive", "predict_archive")
        conda:
            "../../envs/unet-gpu.yaml"
        threads: 4
        resources:
            gpu=1,
            mem_mb=16000,
        params:
            outdir=lambda wildcards, output: Path(output[0]).parent,
            dtype=config["predict"]["dtype"],
            levels=config["predict"]["levels"],
            batch=config["predict"]["batch"],
            tile=(
                f"--tile {config['predict']['tile']}"
                if config["predict"]["tile"]
                else ""
            ),
            tta="--tta" if config["predict"]["tta"] else "",
            hash="--hash" if ARCHIVE["hash"] else "",
        shell:
            "unet predict-archive {input.checkpoint} {input.sheet} {params.outdir}"
            " --dtype {params.dtype} --levels {params.levels} --batch {params.batch}"
            " {params.tile} {params.tta} {params.hash} --threads {threads} > {log} 2>&1"
