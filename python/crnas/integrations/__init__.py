"""Adapters that make CR backbones first-class in other frameworks.

Each adapter is a separate module, imported only on demand, so ``import crnas`` and
``import crnas.integrations`` never import timm, mmdet/mmengine or detectron2:

- :mod:`crnas.integrations.timm`: registers ``cr_resnet50``, ``scr_resnet50`` and the baselines
  ``crnas_resnet18`` … ``crnas_mobilenet_v2`` with timm's registry (``timm.create_model``, including
  ``features_only=True``). Registration happens on import.
- :mod:`crnas.integrations.mmdet`: the ``CRResNet`` backbone in ``mmdet.registry.MODELS``, for
  ``custom_imports=dict(imports=['crnas.integrations.mmdet'])`` in an mmdet 3.x config.
- :mod:`crnas.integrations.detectron2`: ``CRResNetBackbone`` and the ``build_crresnet_backbone`` /
  ``build_crresnet_fpn_backbone`` / ``build_retinanet_crresnet_fpn_backbone`` entries of detectron2's
  ``BACKBONE_REGISTRY``, configured by ``cfg.MODEL.CRNAS`` (``add_crnas_config``).

CR-NAS reallocates blocks and dilations, never strides or channels, so every framework sees the
same four stages as for the baseline network. Their names per framework:

======  ======  ==========================  =====================  ===================  ===========
stage   stride  torchvision returned_layers  timm out_indices      mmdet out_indices    detectron2
======  ======  ==========================  =====================  ===================  ===========
stem    2       --                           0                      --                   --
C2      4       1                            1                      0                    res2
C3      8       2                            2                      1                    res3
C4      16      3                            3                      2                    res4
C5      32      4                            4                      3                    res5
======  ======  ==========================  =====================  ===================  ===========
"""
