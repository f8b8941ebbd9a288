"""Where the course lives on disk, and the fixtures its lessons share.

Nothing in here is part of a deployment: the model server, the grader and the attacks never need it.
That is why the demo model (:func:`demo_model_dir`) lives here.
"""
from pathlib import Path


def repo_root():
    """The course repository: the current directory if it has ``exercises/`` (the instructor's or the
    student's checkout, wherever the package is installed from), else the checkout this package is
    installed from (an editable install, as ``make lab`` makes)."""
    here = Path.cwd()
    if (here / "exercises").is_dir():
        return here
    return Path(__file__).resolve().parents[1]


def demo_model_dir(epochs=30, seed=0):
    """The course's demo model: a small CNN on digits, saved as ``.keras`` and signed with the
    development key. Built once in the cache directory; later calls only return its path.

    A course fixture, not part of a deployment: the model server serves the directory it is given
    (``create_app(model_dir=demo_model_dir())``) and never trains one itself.

    Returns
    -------
    pathlib.Path
        ``cache_dir()/deployment/models/e30-s0/digits`` (by default), verified with
        ``dev_signing_key()[1]``. The server serves it as ``digits``, its folder's name.
    """
    import shutil
    import tempfile

    from .deployment.artifacts import SIGNATURE, save_keras_model, sign_dir
    from .deployment.keys import deployment_dir, dev_signing_key

    target = deployment_dir() / "models" / f"e{epochs}-s{seed}" / "digits"
    private_path, _ = dev_signing_key()
    if (target / SIGNATURE).is_file():
        return target
    from . import data, models

    model = models.train(data.load_digits(), "small_cnn", epochs=epochs, seed=seed, progress=False).model
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digits-", dir=target.parent))
    save_keras_model(model, tmp, input_range=(0.0, 1.0))
    sign_dir(tmp, private_path)
    try:
        tmp.rename(target)  # atomic: a half-built directory is never taken for the demo model
    except OSError:  # another process finished first; its copy is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
    return target
