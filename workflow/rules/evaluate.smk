# Challenge metrics of a dataset's prediction against its ground truth (unet evaluate) on
# the evaluate section's split (val by default). Metrics `auto`: the dataset's challenge,
# by the store's format (ISBI 2012 pixel, Rand and warping errors for isbi2012 and
# synthetic; SEG, IoU and Dice for CTC data). The JSON is what the report shows; the CSV
# holds one row per slice.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
rule evaluate:
    input:
        prediction=f"{RESULTS}/predict/{{dataset}}.zarr",
        ground_truth=f"{RESULTS}/data/{{dataset}}.zarr",
    output:
        json=f"{RESULTS}/eval/{{dataset}}.json",
        csv=report(
            f"{RESULTS}/eval/{{dataset}}.csv",
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"dataset": "{dataset}", "file": "per-slice metrics"},
        ),
    log:
        f"{LOGS}/evaluate/{{dataset}}.log",
    benchmark:
        benchmark_file("evaluate")
    conda:
        "../../envs/unet.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        metrics=metrics_arg(),
        split=config["evaluate"]["split"],
        threshold=config["evaluate"]["threshold"],
        instances=config["evaluate"]["instances"],
    shell:
        "unet evaluate {input.prediction} {input.ground_truth} --metrics {params.metrics}"
        " --split {params.split} --threshold {params.threshold}"
        " --instances {params.instances} --threads {threads}"
        " --out-json {output.json} --out-csv {output.csv} > {log} 2>&1"
