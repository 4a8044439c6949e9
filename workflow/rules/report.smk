# The report of a dataset's run (unet report): results/{dataset}/report/ holds index.html
# (one self-contained file: figures embedded, opens offline), report.md and figures/*.png.
# Inputs: the dataset store, its prediction and evaluation, the environment, the training
# outputs, weight map and first augmentation block (unless config predict.checkpoint
# replaces training), the test volume's prediction (isbi2012), and the benchmark of every
# stage (wall time, peak memory); see report_inputs in common.smk. The resolved config is
# a parameter: any config change rewrites the report (it shows the config), nothing else.
# threads and resources: sane defaults here, a profile overrides them (set-threads, ...).
rule report:
    input:
        unpack(report_inputs),
    output:
        html=report(
            f"{RESULTS}/{{dataset}}/report/index.html",
            caption="../report/index.rst",
            category="Report",
            labels={"dataset": "{dataset}", "file": "index.html"},
        ),
        md=f"{RESULTS}/{{dataset}}/report/report.md",
        figures=report(
            directory(f"{RESULTS}/{{dataset}}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"dataset": "{dataset}", "figure": "{name}"},
        ),
    log:
        f"{LOGS}/report/{{dataset}}.log",
    benchmark:
        benchmark_file("report")
    conda:
        "../../envs/unet.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.html),
        optional=report_args,
        config=json.dumps(config),
        repo=workflow.basedir,
    shell:
        "unet report {params.outdir} --dataset {wildcards.dataset} --store {input.store}"
        " --eval-json {input.eval_json} --prediction {input.prediction}"
        " --environment {input.environment} {params.optional}"
        " --benchmarks {input.benchmarks} --config-json {params.config:q}"
        " --repo {params.repo:q} > {log} 2>&1"
