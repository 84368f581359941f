// Hydrate a DICOM SR as OHIF does and print what it yields, as JSON.
//
//   node hydrate_sr.mjs SR.dcm SERIES_FOLDER
//
// OHIF's extension-cornerstone-dicom-sr reads TID 1500 reports with
// adaptersSR.Cornerstone3D.MeasurementReport.generateToolState(dataset,
// sopInstanceUIDToImageIdMap, metadataProvider); this script calls it the same way, with a
// minimal metadata provider built from the source series' headers (the imagePlaneModule
// Cornerstone's DICOM image loader derives from ImagePositionPatient,
// ImageOrientationPatient and PixelSpacing), registered with @cornerstonejs/core too (its
// imageToWorldCoords maps the SR's 2D coordinates to patient coordinates).
//
// Output: {"annotations": [{"toolName", "sopInstanceUID", "referencedImageId", "label",
// "points": [[x, y, z] LPS mm, ...]}], "warnings": [...]}; a group the adapters cannot read
// is logged by them as a warning, collected here.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { Cornerstone3DSR } from '@cornerstonejs/adapters/cornerstone3D';
import { metaData } from '@cornerstonejs/core';
import dcmjs from 'dcmjs';

const warnings = [];
for (const level of ['warn', 'error']) {
  console[level] = (...args) => warnings.push(args.map(String).join(' '));
}

function readDataset(path) {
  const buffer = readFileSync(path);
  const arrayBuffer = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.length);
  const message = dcmjs.data.DicomMessage.readFile(arrayBuffer, { untilTag: '7FE00010' });
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(message.dict);
}

const [srPath, seriesFolder] = process.argv.slice(2);
if (!srPath || !seriesFolder) {
  console.log('usage: node hydrate_sr.mjs SR.dcm SERIES_FOLDER');
  process.exit(2);
}

const planes = new Map(); // imageId -> imagePlaneModule
const imageIds = {}; // "<SOPInstanceUID>:<frame>" -> imageId
for (const name of readdirSync(seriesFolder).sort()) {
  const path = join(seriesFolder, name);
  if (!statSync(path).isFile()) continue;
  let dataset;
  try {
    dataset = readDataset(path);
  } catch {
    continue; // not DICOM
  }
  if (!dataset.ImagePositionPatient || !dataset.SOPInstanceUID) continue;
  const imageId = `mp3d:${dataset.SOPInstanceUID}`;
  const orientation = dataset.ImageOrientationPatient.map(Number);
  const spacing = dataset.PixelSpacing.map(Number);
  planes.set(imageId, {
    frameOfReferenceUID: dataset.FrameOfReferenceUID,
    rows: dataset.Rows,
    columns: dataset.Columns,
    imageOrientationPatient: orientation,
    rowCosines: orientation.slice(0, 3),
    columnCosines: orientation.slice(3, 6),
    imagePositionPatient: dataset.ImagePositionPatient.map(Number),
    pixelSpacing: spacing,
    rowPixelSpacing: spacing[0],
    columnPixelSpacing: spacing[1],
  });
  imageIds[`${dataset.SOPInstanceUID}:1`] = imageId;
}
const provider = (type, imageId) => (type === 'imagePlaneModule' ? planes.get(imageId) : undefined);
metaData.addProvider(provider, 10000);

const sr = readDataset(srPath);
const toolState = Cornerstone3DSR.MeasurementReport.generateToolState(
  sr, imageIds, { get: provider });
const annotations = [];
for (const [toolName, measurements] of Object.entries(toolState)) {
  for (const measurement of measurements) {
    const { annotation } = measurement;
    annotations.push({
      toolName,
      sopInstanceUID: measurement.sopInstanceUid ?? null,
      referencedImageId: annotation.metadata.referencedImageId ?? null,
      label: annotation.data.label ?? null,
      points: (annotation.data.handles?.points ?? []).map((p) => Array.from(p, Number)),
    });
  }
}
process.stdout.write(JSON.stringify({ annotations, warnings }) + '\n');
