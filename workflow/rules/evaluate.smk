# Challenge metrics of a dataset's prediction against its ground truth (unet evaluate).
# The prediction store comes from the prediction stage; evaluation is not in `rule all` yet.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
rule evaluate:
    input:
        prediction=f"{RESULTS}/predict/{{dataset}}.zarr",
        ground_truth=f"{RESULTS}/data/{{dataset}}.zarr",
    output:
        json=f"{RESULTS}/eval/{{dataset}}.json",
        csv=f"{RESULTS}/eval/{{dataset}}.csv",
    log:
        f"{LOGS}/evaluate/{{dataset}}.log",
    conda:
        "../../envs/unet.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        metrics=" ".join(config["evaluate"]["metrics"]),
        split=config["evaluate"]["split"],
        threshold=config["evaluate"]["threshold"],
        instances=config["evaluate"]["instances"],
    shell:
        "unet evaluate {input.prediction} {input.ground_truth} --metrics {params.metrics}"
        " --split {params.split} --threshold {params.threshold}"
        " --instances {params.instances} --threads {threads}"
        " --out-json {output.json} --out-csv {output.csv} > {log} 2>&1"
