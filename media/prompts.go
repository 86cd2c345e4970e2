package media

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/matterline/matterline/configs"
)

// Prompt is 8 kHz mono 16-bit linear audio, ready to encode.
type Prompt struct {
	Name    string
	Samples []int16
}

// Duration of the prompt at 8 kHz.
func (p *Prompt) Duration() time.Duration {
	if p == nil {
		return 0
	}
	return time.Duration(len(p.Samples)) * time.Second / sampleRate
}

// Built-in prompt names; the embedded files are configs/prompts/NAME.wav.
const (
	PromptGreeting     = "greeting" // welcome + menu
	PromptInvalid      = "invalid"  // that is not a valid choice
	PromptGoodbye      = "goodbye"
	PromptPleaseHold   = "please_hold"
	PromptTransferring = "transferring"
	PromptNobody       = "nobody_available"
	PromptLeaveMessage = "leave_message" // leave a message after the tone
	PromptThankYou     = "thank_you"     // your message has been recorded, thank you
	PromptOutsideHours = "outside_hours"
)

// BuiltinPrompts lists the names every prompt set has.
func BuiltinPrompts() []string {
	return []string{
		PromptGreeting, PromptInvalid, PromptGoodbye, PromptPleaseHold, PromptTransferring,
		PromptNobody, PromptLeaveMessage, PromptThankYou, PromptOutsideHours,
	}
}

// Prompts is the loaded prompt set. It is read-only after LoadPrompts and safe for
// concurrent use.
type Prompts struct {
	byName map[string]*Prompt
}

// LoadPrompts loads the built-in set (embedded) and overrides each with
// dir/NAME.wav when dir is non-empty and the file exists. Other rates and stereo are
// converted to 8 kHz mono; a broken file is an error naming the file.
//
// Other *.wav files in dir are loaded too, under their base name, so rules can refer
// to site-specific prompts.
func LoadPrompts(dir string) (*Prompts, error) {
	ps := &Prompts{byName: make(map[string]*Prompt)}
	for _, name := range BuiltinPrompts() {
		file := "prompts/" + name + ".wav"
		data, err := fs.ReadFile(configs.Prompts, file)
		if err != nil {
			return nil, fmt.Errorf("media: built-in prompt %q: %w", file, err)
		}
		p, err := ParseWAV("built-in "+file, data)
		if err != nil {
			return nil, err
		}
		p.Name = name
		ps.byName[name] = p
	}
	if dir == "" {
		return ps, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("media: prompts dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".wav") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		p, err := LoadWAV(path)
		if err != nil {
			return nil, err
		}
		p.Name = strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		ps.byName[p.Name] = p
	}
	return ps, nil
}

// LoadWAV reads and decodes one WAV file (see ParseWAV); errors name the path.
func LoadWAV(path string) (*Prompt, error) {
	data, err := ReadWAVFile(path, MaxWAVFileBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("media: prompt %q: %w", path, err)
		}
		return nil, fmt.Errorf("media: read prompt: %w", err)
	}
	return ParseWAV(path, data)
}

// Get returns the named prompt or nil.
func (p *Prompts) Get(name string) *Prompt {
	if p == nil {
		return nil
	}
	return p.byName[name]
}

// Names lists the loaded prompts, sorted.
func (p *Prompts) Names() []string {
	if p == nil {
		return nil
	}
	names := make([]string, 0, len(p.byName))
	for n := range p.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Tone returns a sine tone of freqHz lasting dur at about -10 dBFS, with 5 ms fades
// so it starts and ends without a click (the "after the tone" beep is Tone(1000,
// 400*time.Millisecond)).
func Tone(freqHz float64, dur time.Duration) *Prompt {
	n := int(dur * sampleRate / time.Second)
	if n < 0 {
		n = 0
	}
	const amplitude = 10362 // 32767 * 10^(-10/20)
	const fade = sampleRate * 5 / 1000
	s := make([]int16, n)
	for i := range s {
		g := 1.0
		if i < fade {
			g = float64(i) / fade
		}
		if tail := n - 1 - i; tail < fade {
			g = min(g, float64(tail)/fade)
		}
		s[i] = int16(math.Round(amplitude * g * math.Sin(2*math.Pi*freqHz*float64(i)/sampleRate)))
	}
	return &Prompt{Name: fmt.Sprintf("tone-%gHz", freqHz), Samples: s}
}

// Silence returns dur of silence as a prompt.
func Silence(dur time.Duration) *Prompt {
	n := max(0, int(dur*sampleRate/time.Second))
	return &Prompt{Name: "silence", Samples: make([]int16, n)}
}
