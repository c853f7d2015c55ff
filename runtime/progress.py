"""Progress reporting for training, as a callback the trainer calls once per epoch."""

from __future__ import annotations


class EpochBar:
    """A tqdm bar over epochs with the epoch's figures. `batch_loss`/`batch_acc` are the means over the
    epoch's mini-batches in training mode (dropout on, penalties included, weights moving during the
    epoch); the final line's `train loss` is the whole training split in inference mode with the final
    weights, so the two differ (docs/run-folder.md)."""

    def __init__(self, name: str, total: int, initial: int):
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=initial, desc=name, unit="epoch", dynamic_ncols=True, leave=True)

    def epoch(self, row: dict) -> None:
        post = {"batch_loss": f"{row['loss']:.4f}"}
        if row.get("accuracy") is not None:
            post["batch_acc"] = f"{row['accuracy']:.3f}"
        if row.get("val_loss") is not None:
            post["val_loss"] = f"{row['val_loss']:.4f}"
            if row.get("val_accuracy") is not None:
                post["val_acc"] = f"{row['val_accuracy']:.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class Silent:
    def epoch(self, row: dict) -> None:
        pass

    def close(self) -> None:
        pass
