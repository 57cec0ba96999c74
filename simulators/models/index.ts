// One model per device type in device-schemas/.
import { bedSensor } from './bed-sensor.js';
import { bloodPressure } from './blood-pressure.js';
import type { Model } from './common.js';
import { doorSensor } from './door-sensor.js';
import { emergencyButton } from './emergency-button.js';
import { fallDetector } from './fall-detector.js';
import { medicationDispenser } from './medication-dispenser.js';
import { motionSensor } from './motion-sensor.js';
import { pulseOximeter } from './pulse-oximeter.js';
import { roomClimate } from './room-climate.js';
import { thermometer } from './thermometer.js';
import { weightScale } from './weight-scale.js';

export const MODELS: Readonly<Record<string, Model>> = {
  'pulse-oximeter': pulseOximeter,
  'blood-pressure': bloodPressure,
  'weight-scale': weightScale,
  thermometer,
  'bed-sensor': bedSensor,
  'fall-detector': fallDetector,
  'motion-sensor': motionSensor,
  'door-sensor': doorSensor,
  'room-climate': roomClimate,
  'medication-dispenser': medicationDispenser,
  'emergency-button': emergencyButton,
};

/** Battery life in days for a full charge (mains-powered devices are absent). */
export const BATTERY_DAYS: Readonly<Record<string, number>> = {
  'pulse-oximeter': 20,
  'blood-pressure': 180,
  'weight-scale': 365,
  thermometer: 365,
  'fall-detector': 30,
  'motion-sensor': 730,
  'door-sensor': 730,
  'room-climate': 365,
  'medication-dispenser': 30,
  'emergency-button': 365,
};
