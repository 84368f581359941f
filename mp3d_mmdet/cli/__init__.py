"""The plugin's command-line tools, installed as console commands by ``pip install``:

=======================================  ==========================================================
command                                  what it does
=======================================  ==========================================================
``mp3d-detect-volume``                   lesion detection in a whole CT volume (NIfTI, DICOM, ...)
``mp3d-detect-volumes``                  lesion detection in many volumes into one resumable file
``mp3d-eval-volumes``                    3D FROC (LENS protocol) of the batch's lesion candidates
``mp3d-eval-froc``                       FROC / mAP report of saved detections
``mp3d-draw-detections``                 detections against ground truth on key slices
``mp3d-make-synthetic-deeplesion``       a synthetic data set in the DeepLesion layout
``mp3d-convert-pretraining-checkpoint``  COCO pre-training -> N-slice detector init
``mp3d-convert-official-checkpoint``     official MP3D checkpoint -> this plugin's layout
``mp3d-quick-check``                     a few training and test iterations of any config on CPU
=======================================  ==========================================================

Command ``mp3d-<name>`` is module ``<name>`` (dashes as underscores); its ``main(argv)``
returns the exit status (:mod:`.common`: 0 done, 1 an error in one line on stderr naming the
file or argument, 2 unusable command-line arguments, 130 Ctrl-C), and ``python
tools/<name>.py`` runs the same ``main`` from a checkout (``tools/model_converters/`` for the
converters). :mod:`.common` and :mod:`.converter_command` hold what the commands share.
"""
