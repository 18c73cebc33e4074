"""The published KMNIST results a learner's runs can be set beside.

From the "Benchmarks & Results" table of the official repository's README
(https://github.com/rois-codh/kmnist): top-1 accuracy on the full KMNIST test set of 10,000
images. Rows marked ``old_version`` were measured on an earlier release of the dataset,
which the README says gave slightly lower numbers. A run here is scored on whatever test
split it used (kmnist-mini's 2,000 images, or the full set through tensorflow-datasets):
never the same measurement, and the app labels both.
"""

from dataclasses import dataclass

SOURCE = "rois-codh/kmnist README, full KMNIST test set (10,000 images)"


@dataclass(frozen=True)
class Published:
    model: str
    accuracy: float
    old_version: bool = False  # measured on an earlier release of the dataset


PUBLISHED = (
    Published("4-Nearest Neighbour baseline", 0.9210),
    Published("Tuned SVM (RBF kernel)", 0.9282, old_version=True),
    Published("PCA + 4-kNN", 0.9398),
    Published("Keras simple CNN", 0.9463),
    Published("PreActResNet-18", 0.9782, old_version=True),
    Published("PreActResNet-18 + Input Mixup", 0.9841, old_version=True),
    Published("PreActResNet-18 + Manifold Mixup", 0.9883, old_version=True),
    Published("ResNet18 + VGG ensemble", 0.9890, old_version=True),
    Published("shake-shake-26 2x96d (S-S-I), Cutout 14", 0.9934, old_version=True),
)
