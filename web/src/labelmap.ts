// The working label lives in NiiVue's drawing bitmap, which is stored in NiiVue's RAS-reoriented
// voxel order; the server speaks native voxel indices [i, j, k] of the image file (the order of
// the NIfTI, which is ITK's index order). IndexMap converts between the two, using the same
// img2RASstart / img2RASstep tables NiiVue uses when it saves a drawing back to native space.
// Journal keeps our own undo/redo stack of sparse deltas (NiiVue has undo only).

export interface NativeGeometry {
  dims: [number, number, number] // native size
  img2RASstart: number[]
  img2RASstep: number[]
  dimsRAS: number[] // [n, x, y, z]
  pixDimsRAS: number[] // [n, x, y, z] mm
  permRAS: number[]
}

export class IndexMap {
  readonly n: number
  // For each RAS axis r: the native axis it runs along and whether it runs backwards.
  private nativeAxisOfRas = [0, 1, 2]
  private flipOfRas = [false, false, false]
  private rasAxisOfNative = [0, 1, 2]
  private readonly dr: number[]
  // Contribution of native index i / j / k to the bitmap index (bitmap = ox[i] + oy[j] + oz[k]).
  private readonly offsets: Int32Array[]

  constructor(private g: NativeGeometry) {
    const [nx, ny] = g.dims
    const nativeStride = [1, nx, nx * ny]
    const used = [false, false, false]
    for (let r = 0; r < 3; r++) {
      const step = g.img2RASstep[r]
      let axis = -1
      for (let a = 0; a < 3; a++) {
        if (!used[a] && Math.abs(step) === nativeStride[a] && g.dims[a] === g.dimsRAS[r + 1]) {
          axis = a
          break
        }
      }
      if (axis < 0) axis = r
      used[axis] = true
      this.nativeAxisOfRas[r] = axis
      this.flipOfRas[r] = step < 0
      this.rasAxisOfNative[axis] = r
    }
    this.dr = [g.dimsRAS[1], g.dimsRAS[2], g.dimsRAS[3]]
    this.n = g.dims[0] * g.dims[1] * g.dims[2]
    const rasStride = [1, this.dr[0], this.dr[0] * this.dr[1]]
    this.offsets = [0, 1, 2].map((a) => {
      const r = this.rasAxisOfNative[a]
      const n = g.dims[a]
      const t = new Int32Array(n)
      for (let c = 0; c < n; c++) t[c] = (this.flipOfRas[r] ? n - 1 - c : c) * rasStride[r]
      return t
    })
  }

  get dims(): [number, number, number] {
    return this.g.dims
  }
  // Spacing (mm) along each native axis.
  spacingNative(): number[] {
    return [0, 1, 2].map((a) => this.g.pixDimsRAS[this.rasAxisOfNative[a] + 1])
  }
  // The native axis that is the normal of a NiiVue slice view (0 axial, 1 coronal, 2 sagittal).
  nativeAxisOfView(axCorSag: number): number {
    const ras = axCorSag === 0 ? 2 : axCorSag === 1 ? 1 : 0
    return this.nativeAxisOfRas[ras]
  }
  rasToNative(v: ArrayLike<number>): [number, number, number] {
    const out: [number, number, number] = [0, 0, 0]
    for (let r = 0; r < 3; r++) {
      const a = this.nativeAxisOfRas[r]
      const c = Math.min(Math.max(Math.round(v[r]), 0), this.dr[r] - 1)
      out[a] = this.flipOfRas[r] ? this.g.dims[a] - 1 - c : c
    }
    return out
  }
  nativeToRas(i: number, j: number, k: number): [number, number, number] {
    const nat = [i, j, k]
    const out: [number, number, number] = [0, 0, 0]
    for (let r = 0; r < 3; r++) {
      const a = this.nativeAxisOfRas[r]
      out[r] = this.flipOfRas[r] ? this.g.dims[a] - 1 - nat[a] : nat[a]
    }
    return out
  }
  // Index into NiiVue's drawing bitmap of native voxel (i, j, k).
  bitmapIndex(i: number, j: number, k: number): number {
    return this.offsets[0][i] + this.offsets[1][j] + this.offsets[2][k]
  }
  bitmapToNative(b: number): [number, number, number] {
    const x = b % this.dr[0]
    const y = Math.floor(b / this.dr[0]) % this.dr[1]
    const z = Math.floor(b / (this.dr[0] * this.dr[1]))
    return this.rasToNative([x, y, z])
  }
  // Native-order copy of a RAS-order bitmap.
  toNative(bitmap: Uint8Array): Uint8Array {
    const out = new Uint8Array(this.n)
    const [nx, ny, nz] = this.g.dims
    const [ox, oy, oz] = this.offsets
    let n = 0
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++) {
        const base = oy[j] + oz[k]
        for (let i = 0; i < nx; i++) out[n++] = bitmap[base + ox[i]]
      }
    return out
  }
  // RAS-order bitmap from a native-order label.
  fromNative(native: ArrayLike<number>, out: Uint8Array): void {
    const [nx, ny, nz] = this.g.dims
    const [ox, oy, oz] = this.offsets
    let n = 0
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++) {
        const base = oy[j] + oz[k]
        for (let i = 0; i < nx; i++) out[base + ox[i]] = native[n++]
      }
  }
}

// One undoable change: bitmap indices with the values before and after.
export interface Delta {
  name: string
  idx: Uint32Array
  before: Uint8Array
  after: Uint8Array
}

export function diff(name: string, shadow: Uint8Array, bitmap: Uint8Array): Delta | null {
  let count = 0
  for (let n = 0; n < bitmap.length; n++) if (bitmap[n] !== shadow[n]) count++
  if (count === 0) return null
  const idx = new Uint32Array(count)
  const before = new Uint8Array(count)
  const after = new Uint8Array(count)
  let m = 0
  for (let n = 0; n < bitmap.length; n++) {
    if (bitmap[n] !== shadow[n]) {
      idx[m] = n
      before[m] = shadow[n]
      after[m] = bitmap[n]
      m++
    }
  }
  return { name, idx, before, after }
}

// Undo/redo over the bitmap; `shadow` is the last committed state (what a diff is taken against).
export class Journal {
  private undoStack: Delta[] = []
  private redoStack: Delta[] = []
  private readonly limit = 100
  shadow: Uint8Array

  constructor(bitmap: Uint8Array) {
    this.shadow = bitmap.slice()
  }
  reset(bitmap: Uint8Array): void {
    this.shadow = bitmap.slice()
    this.undoStack = []
    this.redoStack = []
  }
  get canUndo(): boolean {
    return this.undoStack.length > 0
  }
  get canRedo(): boolean {
    return this.redoStack.length > 0
  }
  get undoName(): string {
    return this.undoStack.at(-1)?.name ?? ''
  }
  get redoName(): string {
    return this.redoStack.at(-1)?.name ?? ''
  }
  // Records whatever changed in `bitmap` since the last commit.
  commit(name: string, bitmap: Uint8Array): Delta | null {
    const d = diff(name, this.shadow, bitmap)
    if (!d) return null
    for (let m = 0; m < d.idx.length; m++) this.shadow[d.idx[m]] = d.after[m]
    this.push(d)
    return d
  }
  // Records a change already applied to the bitmap (and applies it to the shadow).
  push(d: Delta): void {
    for (let m = 0; m < d.idx.length; m++) this.shadow[d.idx[m]] = d.after[m]
    this.undoStack.push(d)
    if (this.undoStack.length > this.limit) this.undoStack.shift()
    this.redoStack = []
  }
  undo(bitmap: Uint8Array): Delta | null {
    const d = this.undoStack.pop()
    if (!d) return null
    for (let m = 0; m < d.idx.length; m++) bitmap[d.idx[m]] = this.shadow[d.idx[m]] = d.before[m]
    this.redoStack.push(d)
    return d
  }
  redo(bitmap: Uint8Array): Delta | null {
    const d = this.redoStack.pop()
    if (!d) return null
    for (let m = 0; m < d.idx.length; m++) bitmap[d.idx[m]] = this.shadow[d.idx[m]] = d.after[m]
    this.undoStack.push(d)
    return d
  }
  // Drops uncommitted edits (restores the shadow).
  revert(bitmap: Uint8Array): void {
    bitmap.set(this.shadow)
  }
}

// A server delta (box + runs [length, before, after] in native scan order, i fastest) applied to
// the bitmap; returns it as a Delta for the journal.
export function applyRuns(map: IndexMap, bitmap: Uint8Array, name: string, box: { begin: number[]; end: number[] }, runs: number[][]): Delta {
  const idx: number[] = []
  const before: number[] = []
  const after: number[] = []
  const [b0, b1, b2] = box.begin
  const [e0, e1] = box.end
  const w = e0 - b0
  const h = e1 - b1
  let pos = 0
  for (const [len, bef, aft] of runs) {
    if (bef !== aft) {
      for (let p = pos; p < pos + len; p++) {
        const i = b0 + (p % w)
        const j = b1 + (Math.floor(p / w) % h)
        const k = b2 + Math.floor(p / (w * h))
        const bi = map.bitmapIndex(i, j, k)
        idx.push(bi)
        before.push(bitmap[bi])
        after.push(aft)
        bitmap[bi] = aft
      }
    }
    pos += len
  }
  return { name, idx: Uint32Array.from(idx), before: Uint8Array.from(before), after: Uint8Array.from(after) }
}

// NIfTI-1 bytes of a native-order uint8 label, with the image's header (geometry) and 3 dims.
export function labelNifti(imageHeader: Uint8Array, native: Uint8Array): Uint8Array {
  const hdr = imageHeader.slice(0, 348)
  const dv = new DataView(hdr.buffer)
  const le = dv.getInt32(0, true) === 348
  dv.setInt16(40, 3, le) // dim[0]
  for (let d = 4; d <= 7; d++) dv.setInt16(40 + 2 * d, 1, le)
  dv.setInt16(70, 2, le) // datatype DT_UINT8
  dv.setInt16(72, 8, le) // bitpix
  dv.setFloat32(108, 352, le) // vox_offset
  dv.setFloat32(112, 1, le) // scl_slope
  dv.setFloat32(116, 0, le) // scl_inter
  dv.setFloat32(124, 0, le) // cal_max
  dv.setFloat32(128, 0, le) // cal_min
  dv.setInt16(68, 0, le) // intent_code
  const out = new Uint8Array(352 + native.length)
  out.set(hdr, 0)
  out.set(native, 352)
  return out
}

export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'))
  return new Uint8Array(await new Response(stream).arrayBuffer())
}
export async function gunzip(bytes: ArrayBuffer): Promise<Uint8Array> {
  const u = new Uint8Array(bytes)
  if (u[0] !== 0x1f || u[1] !== 0x8b) return u
  const stream = new Blob([u as BlobPart]).stream().pipeThrough(new DecompressionStream('gzip'))
  return new Uint8Array(await new Response(stream).arrayBuffer())
}
export function base64(bytes: Uint8Array): string {
  let s = ''
  const chunk = 0x8000
  for (let n = 0; n < bytes.length; n += chunk) s += String.fromCharCode(...bytes.subarray(n, n + chunk))
  return btoa(s)
}

// Native-order voxels of a NIfTI label file (uint8/int16/...; read as integers).
export function niftiVoxels(nii: Uint8Array): { dims: number[]; data: Uint8Array } {
  const dv = new DataView(nii.buffer, nii.byteOffset, nii.byteLength)
  const le = dv.getInt32(0, true) === 348
  const dims = [1, 2, 3].map((d) => dv.getInt16(40 + 2 * d, le))
  const datatype = dv.getInt16(70, le)
  const off = Math.round(dv.getFloat32(108, le))
  const n = dims[0] * dims[1] * dims[2]
  if (datatype === 2) return { dims, data: nii.slice(off, off + n) }
  const out = new Uint8Array(n)
  const bpv: Record<number, number> = { 2: 1, 256: 1, 4: 2, 512: 2, 8: 4, 768: 4, 16: 4 }
  const size = bpv[datatype] ?? 1
  for (let p = 0; p < n; p++) {
    const o = off + p * size
    let v = 0
    if (datatype === 2 || datatype === 256) v = nii[o]
    else if (datatype === 4) v = dv.getInt16(o, le)
    else if (datatype === 512) v = dv.getUint16(o, le)
    else if (datatype === 8) v = dv.getInt32(o, le)
    else if (datatype === 768) v = dv.getUint32(o, le)
    else if (datatype === 16) v = dv.getFloat32(o, le)
    out[p] = v
  }
  return { dims, data: out }
}
