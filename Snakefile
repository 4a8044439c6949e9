# U-Net (Ronneberger et al. 2015) pipeline: a table of contents.
# Science parameters live in config.yaml (model and augment defaults in unet/defaults.py);
# each rule carries sane default threads and resources, and a profile (profiles/local)
# overrides what a machine changes (cores, GPUs; per-rule threads and memory on a cluster).
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# `--config` values typed as in a config file; unset model/augment keys from unet/defaults.py.
complete_config(config, workflow.config_settings.config_args)
validate(config, "workflow/schemas/config.schema.yaml")
RESULTS = config["results"]
LOGS = f"{RESULTS}/logs"


include: "workflow/rules/info.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/archive.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/export.smk"


# The whole chain for config `dataset`: fetch, weights, augment, train, predict, evaluate
# and the report that shows them all (its inputs: report_inputs in common.smk).
rule all:
    default_target: True
    input:
        report=f"{RESULTS}/{config['dataset']}/report/index.html",
        export=(
            f"{RESULTS}/export/{config['dataset']}.bioimageio.zip"
            if config["export"]["enabled"]
            else []
        ),
