"""Linear probe on frozen features: standardised features, multinomial logistic regression
(L-BFGS, scikit-learn), the inverse regularisation C picked by stratified cross-validation on
the training split only, then refit on all of it and scored once on the test split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jepa_pipe.eval.metrics import proportion_interval, topk_accuracy

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
) -> dict:
    """Top-1 / top-5 (percent) of a linear classifier trained on (train_x, train_y) [N, D], and
    top-1's 95 % interval over the test samples (`top1_ci95`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_y, test_y = np.asarray(train_y), np.asarray(test_y)

    def model(c: float):
        return make_pipeline(
            StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed)
        )

    counts = np.bincount(train_y, minlength=num_classes)
    folds = int(min(5, counts[counts > 0].min()))
    if len(cs) > 1 and folds >= 2:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        cv_acc = [float(cross_val_score(model(c), train_x, train_y, cv=cv).mean()) for c in cs]
        best = float(cs[int(np.argmax(cv_acc))])  # first of equals: the strongest regulariser
    else:
        cv_acc, best = [], float(cs[0])
    clf = model(best).fit(train_x, train_y)
    # scores over every class of the dataset, including ones absent from the training split
    scores = np.full((len(test_x), num_classes), -np.inf)
    decision = clf.decision_function(test_x)
    if decision.ndim == 1:  # two classes: one column, class 1 vs class 0
        decision = np.stack([-decision, decision], axis=1)
    scores[:, clf.classes_] = decision
    acc = topk_accuracy(scores, test_y, ks=(1, 5))
    correct = round(acc["top1"] * len(test_y) / 100)
    return {
        **acc,
        "top1_ci95": list(proportion_interval(correct, len(test_y))),  # Wilson, percent
        "C": best,
        "cv_top1": dict(zip(map(str, cs), cv_acc, strict=False)),
    }
