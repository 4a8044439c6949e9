# Helpers shared by the workflow steps: paths and command-line fragments from config.
RESULTS = config["results"]
LOGS = f"{RESULTS}/logs"


def model_args(cfg=None):
    """The model section of the config as `unet` command-line flags."""
    cfg = config["model"] if cfg is None else cfg
    flags = [
        f"--{key.replace('_', '-')} {value}"
        for key, value in cfg.items()
        if key != "norm"
    ]
    flags.append(f"--norm {cfg.get('norm') or 'none'}")
    return " ".join(flags)
