# Overlap-tile prediction (unet predict): a checkpoint over a dataset's raw images -> an
# OME-Zarr probability map, which `rule evaluate` scores and `rule report` shows. The
# checkpoint comes from training (config predict.checkpoint names another). predict_test
# predicts the unlabelled test volume ({dataset}-test.zarr, isbi2012) with the dataset's
# checkpoint. Snakemake removes the output of a failed job; to resume a killed long
# prediction instead, run the `unet predict` command of the log again: it computes only
# the chunks not yet written. The store records the completing run's wall time, Mpx/s and
# peak memory (its `unet` attributes, `run`), which the report shows.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
PREDICT = config["predict"]
PREDICT_SHELL = (
    "unet predict {input.checkpoint} {input.source} {output} --dtype {params.dtype}"
    " --levels {params.levels} --batch {params.batch} {params.tile} {params.tta}"
    " --threads {threads} > {log} 2>&1"
)
PREDICT_PARAMS = dict(
    dtype=PREDICT["dtype"],
    levels=PREDICT["levels"],
    batch=PREDICT["batch"],
    tile=f"--tile {PREDICT['tile']}" if PREDICT["tile"] else "",
    tta="--tta" if PREDICT["tta"] else "",
)


PARTS = PREDICT["parts"]


if PARTS == 1:

    rule predict:
        input:
            checkpoint=lambda wildcards: trained_checkpoint(wildcards.dataset),
            source=f"{RESULTS}/data/{{dataset}}.zarr",
        output:
            directory(f"{RESULTS}/predict/{{dataset}}.zarr"),
        log:
            f"{LOGS}/predict/{{dataset}}.log",
        benchmark:
            benchmark_file("predict")
        conda:
            "../../envs/unet-gpu.yaml"
        threads: 4
        resources:
            gpu=1,
            mem_mb=16000,
        params:
            **PREDICT_PARAMS,
        shell:
            PREDICT_SHELL

    # isbi2012-test.zarr matches {dataset}.zarr too: the test volume is one job
    ruleorder: predict_test > predict

else:
    # Scattered: config predict.parts GPU jobs, each a contiguous range of the chunks,
    # fill one staging store {dataset}.zarr.parts/store.zarr (a killed part resumes its
    # range); then rule predict_gather, a CPU job, checks that every chunk is written, writes the
    # pyramid and renames the store onto {dataset}.zarr (see unet/predict_parts.py).

    rule predict_part:
        input:
            checkpoint=lambda wildcards: trained_checkpoint(wildcards.dataset),
            source=f"{RESULTS}/data/{{dataset}}.zarr",
        output:
            record=temp(
                f"{RESULTS}/predict/{{dataset}}.zarr.parts/{{part}}-of-{PARTS}.json"
            ),
        log:
            f"{LOGS}/predict/{{dataset}}.part-{{part}}-of-{PARTS}.log",
        benchmark:
            benchmark_file("predict_part", f"{{dataset}}-{{part}}-of-{PARTS}")
        wildcard_constraints:
            part=r"\d+",
        conda:
            "../../envs/unet-gpu.yaml"
        threads: 4
        resources:
            gpu=1,
            mem_mb=16000,
        params:
            **PREDICT_PARAMS,
            target=lambda wildcards: f"{RESULTS}/predict/{wildcards.dataset}.zarr",
            part=lambda wildcards: f"--part {wildcards.part}/{PARTS}",
        shell:
            PREDICT_SHELL.replace("{output}", "{params.target} {params.part}")

    rule predict_gather:
        input:
            checkpoint=lambda wildcards: trained_checkpoint(wildcards.dataset),
            source=f"{RESULTS}/data/{{dataset}}.zarr",
            parts=expand(
                f"{RESULTS}/predict/{{{{dataset}}}}.zarr.parts/{{part}}-of-{PARTS}.json",
                part=range(1, PARTS + 1),
            ),
        output:
            directory(f"{RESULTS}/predict/{{dataset}}.zarr"),
        log:
            f"{LOGS}/predict/{{dataset}}.log",
        benchmark:
            benchmark_file("predict")
        conda:
            "../../envs/unet.yaml"
        threads: 2
        resources:
            mem_mb=4000,
        params:
            **PREDICT_PARAMS,
        shell:
            PREDICT_SHELL.replace("{output}", "{output} --gather")

    ruleorder: predict_test > predict_gather


rule predict_test:
    input:
        checkpoint=lambda wildcards: trained_checkpoint(wildcards.dataset),
        source=f"{RESULTS}/data/{{dataset}}-test.zarr",
    output:
        directory(f"{RESULTS}/predict/{{dataset}}-test.zarr"),
    log:
        f"{LOGS}/predict/{{dataset}}-test.log",
    benchmark:
        benchmark_file("predict_test")
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_+-]+",
    conda:
        "../../envs/unet-gpu.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=16000,
    params:
        **PREDICT_PARAMS,
    shell:
        PREDICT_SHELL
