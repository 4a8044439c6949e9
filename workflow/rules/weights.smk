# Loss weight maps (Ronneberger et al. 2015, eq. 2) of a dataset's label images.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
rule weights:
    input:
        store=f"{RESULTS}/data/{{dataset}}.zarr",
    output:
        weights=directory(f"{RESULTS}/data/{{dataset}}.weights.zarr"),
    log:
        f"{LOGS}/weights/{{dataset}}.log",
    benchmark:
        benchmark_file("weights")
    conda:
        "../../envs/unet.yaml"
    threads: 4
    resources:
        mem_mb=4000,
    params:
        w0=config["weights"]["w0"],
        sigma=config["weights"]["sigma"],
        class_weights=class_weights_arg(),
    shell:
        "unet weights {input.store} --out {output.weights} --w0 {params.w0}"
        " --sigma {params.sigma} --class-weights {params.class_weights}"
        " --threads {threads} > {log} 2>&1"
