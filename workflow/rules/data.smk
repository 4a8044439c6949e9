# Datasets: download (mirror first) and conversion to the canonical zarr store.
# The store of unlabelled slices ({dataset}-test.zarr, ISBI 2012 only) has its own rule.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).


rule fetch:
    output:
        store=directory(f"{RESULTS}/data/{{dataset}}.zarr"),
    log:
        f"{LOGS}/fetch/{{dataset}}.log",
    benchmark:
        benchmark_file("fetch")
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_+-]+",
    conda:
        "../../envs/unet.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        out=store_folder,
        cache=f"{RESULTS}/data/downloads/{{dataset}}",
        args=fetch_args,
    shell:
        "unet fetch {wildcards.dataset} --out {params.out} --cache {params.cache}"
        " --stores labelled {params.args} > {log} 2>&1"


rule fetch_test:
    input:
        store=f"{RESULTS}/data/{{dataset}}.zarr",
    output:
        store=directory(f"{RESULTS}/data/{{dataset}}-test.zarr"),
    log:
        f"{LOGS}/fetch/{{dataset}}-test.log",
    benchmark:
        benchmark_file("fetch_test")
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_+-]+",
    conda:
        "../../envs/unet.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        out=store_folder,
        cache=f"{RESULTS}/data/downloads/{{dataset}}",
        args=fetch_args,
    shell:
        "unet fetch {wildcards.dataset} --out {params.out} --cache {params.cache}"
        " --stores test {params.args} > {log} 2>&1"


ruleorder: fetch_test > fetch
