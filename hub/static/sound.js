// Short notification tones. Browsers allow sound only after the person touched the page,
// so the first click or key press unlocks it; until then the visible highlight carries on.

export class Chime {
  /** tones: [[start offset in s, frequency in Hz], ...], each `length` s at `volume`. */
  constructor(tones, volume = 0.2, length = 0.4) {
    this.tones = tones;
    this.volume = volume;
    this.length = length;
    this.audio = null;
    const unlock = () => {
      this.audio ??= new AudioContext();
      if (this.audio.state === "suspended") this.audio.resume();
    };
    document.addEventListener("click", unlock);
    document.addEventListener("keydown", unlock);
  }

  /** Play the tones; false when the page may not make sound yet. */
  play() {
    const audio = this.audio;
    if (!audio || audio.state !== "running") return false;
    for (const [offset, freq] of this.tones) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      const at = audio.currentTime + offset;
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(this.volume, at);
      gain.gain.exponentialRampToValueAtTime(0.001, at + this.length);
      osc.connect(gain).connect(audio.destination);
      osc.start(at);
      osc.stop(at + this.length + 0.05);
    }
    return true;
  }
}

/** The knock at a room's door (staff board and call page sound the same). */
export const knockTones = [[0, 880], [0.25, 660]];
