# The environment report (unet info --json): versions, torch build, device, the model.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
rule environment:
    output:
        json=f"{RESULTS}/environment.json",
    log:
        f"{LOGS}/environment.log",
    benchmark:
        benchmark_file("environment", "environment")
    conda:
        "../../envs/unet.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        model=model_args(),
    shell:
        "unet info --json --model {params.model} --out {output.json} > {log} 2>&1"
