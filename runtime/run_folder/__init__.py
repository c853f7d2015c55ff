"""The run folder: everything a training run leaves behind, each file written atomically.

    spec.dl           the spec as trained (with --set overrides applied)
    weights.npz       the trained model: one array per parameter and batchnorm statistic (dense1.weight ...)
    preprocess.npz    mul, add: the input map x * mul + add fitted on the training split
    data.json         where a data file was read from (absolute path) and its sha256
    checkpoint.npz    the last completed epoch, as one file: weights, optimizer state, best weights,
                      early-stopping counters, both random-generator states, history (--resume reads it)
    history.csv       one row per epoch: epoch, lr, loss, accuracy, val_loss, val_accuracy, seconds
    metrics.json      final train / validation / test metrics, classes, task, timing, BLAS threads
    vocab.json        a text run's tokenizer (words, chars, bpe, wordpiece), L and vocabulary
    tokenizer.json    a subword tokenizer, as Hugging Face tokenizers saves it (bpe, wordpiece)
    curves.png        loss and accuracy curves
    confusion.png     the confusion matrix of the last split dlc eval reported
    .lock             held by the dlc process writing the folder
    .dlc-run.json     the manifest: the folder is a dlc run, and the files the run owns

A folder is a run's when dlc created its manifest; dlc deletes or replaces only the files the
manifest names, never a file by its name alone, and never follows a symbolic link to write.
A new run goes into a folder that does not exist or is empty, or over an earlier run with
`overwrite` (files of the user's beside it are kept; one that takes a run file's name is refused).

Every write goes to a temporary file in the folder, is fsynced and renamed over the old file,
so a file is always either the old or the new version. Files get the user's umask, as any
file the user creates. An OS failure (read-only folder, full disk) is a `DLError` naming the file.

The package's modules: `files` (names, atomic writes, npz/JSON/CSV read and write, sizes, folder
names), `checkpoint` (one file per completed epoch), `ownership` (the manifest and the lock),
`plots` (curves and figures). Callers use them through this package (`rf.save_npz`, `rf.RunLock`).
"""

from .files import *  # noqa: F401,F403
from .files import _error, _os_error, _file_mode, _check_regular, _json_default  # noqa: F401
from .checkpoint import checkpoint_damaged, load_checkpoint, save_checkpoint  # noqa: F401
from .ownership import RunLock, claim, is_run, remove_stale_temp_files  # noqa: F401
from .plots import new_figure, save_curves, save_figure  # noqa: F401
