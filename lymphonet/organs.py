"""Canonical organ names: the vocabulary every layer of lymphonet speaks.

Clinic structure names ("Lt Lung", "LUNG_L", "Lung_Left") are matched to these names by
:mod:`lymphonet.io.structure_map`; the blood-dose engine maps them to circulation compartments and the
kinetics layer picks the lymphoid ones. A name not in this list is kept as is (e.g. targets, "ptv70").
"""

from __future__ import annotations

#: Canonical organ -> short description. Paired organs have left/right entries and a combined one;
#: when both sides and the combined structure exist, the combined one wins for dose statistics.
CANONICAL_ORGANS: dict[str, str] = {
    "body": "external contour of the patient",
    "lungs": "both lungs (combined)",
    "lung_left": "left lung",
    "lung_right": "right lung",
    "heart": "heart (whole, incl. chambers)",
    "coronary": "coronary arteries (myocardial blood)",
    "great_vessels": "aorta, venae cavae and pulmonary artery (combined)",
    "aorta": "aorta",
    "vena_cava": "superior and inferior vena cava (combined)",
    "superior_vena_cava": "superior vena cava",
    "inferior_vena_cava": "inferior vena cava",
    "pulmonary_artery": "pulmonary artery trunk",
    "esophagus": "oesophagus",
    "stomach": "stomach",
    "small_bowel": "small intestine",
    "large_bowel": "colon and rectum",
    "bowel": "bowel bag (small + large intestine)",
    "liver": "liver",
    "spleen": "spleen",
    "pancreas": "pancreas",
    "kidneys": "both kidneys (combined)",
    "kidney_left": "left kidney",
    "kidney_right": "right kidney",
    "bladder": "urinary bladder",
    "brain": "brain",
    "brainstem": "brainstem",
    "spinal_cord": "spinal cord",
    "thyroid": "thyroid",
    "thymus": "thymus",
    "parotids": "parotid glands",
    "bone_marrow": "active (red) bone marrow: vertebrae, pelvis, sternum, ribs",
    "bone_marrow_cranium": "skull (red-marrow bone site, ICRP 89)",
    "bone_marrow_cervical": "cervical vertebrae (red-marrow bone site)",
    "bone_marrow_thoracic": "thoracic vertebrae (red-marrow bone site)",
    "bone_marrow_lumbar": "lumbar vertebrae (red-marrow bone site)",
    "bone_marrow_sacrum": "sacrum (red-marrow bone site)",
    "bone_marrow_os_coxae": "pelvic bones, os coxae (red-marrow bone site)",
    "bone_marrow_femora": "femora, upper (red-marrow bone site)",
    "bone_marrow_sternum": "sternum (red-marrow bone site)",
    "bone_marrow_ribs": "ribs (red-marrow bone site)",
    "lymph_nodes": "lymph-node stations",
    "skin": "skin",
    "muscle": "skeletal muscle",
    "target": "treatment target (GTV/CTV/PTV)",
}

#: Where resident lymphocytes sit and are killed by the local dose (kinetics layer): the lymphoid
#: organs, the respiratory-tract mucosa (dosed over the ``lungs``), the liver, the gut-associated
#: lymphoid tissue (dosed over the contoured ``bowel``: small and large bowel) and the lymphocytes
#: dispersed through other tissue (skin, muscle...: dosed over the ``body`` outside the other
#: sites). The two-population core gives the last four no weight.
LYMPHOID_ORGANS: tuple[str, ...] = ("spleen", "lymph_nodes", "bone_marrow", "thymus", "lungs",
                                    "liver", "bowel", "body")

#: Paired organs: combined name -> (left, right).
PAIRED: dict[str, tuple[str, str]] = {
    "lungs": ("lung_left", "lung_right"),
    "kidneys": ("kidney_left", "kidney_right"),
}


def is_canonical(name: str) -> bool:
    """True for names in :data:`CANONICAL_ORGANS`."""
    return name in CANONICAL_ORGANS
