# U-Net (Ronneberger et al. 2015) pipeline: a table of contents.
# Science parameters live in config.yaml; threads and resources in profiles/.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/info.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    default_target: True
    input:
        environment=f"{RESULTS}/environment.json",
        dataset=f"{RESULTS}/data/{config['dataset']}.zarr",
        weights=f"{RESULTS}/data/{config['dataset']}.weights.zarr",
        augment=augment_blocks(config["dataset"]),
